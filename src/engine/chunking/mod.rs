//! Cutting file content into chunks: the streaming FastCDC chunker, its cut search with a
//! shortcut through runs of zeros, and the zero-run test both it and blob compression use.

pub(crate) mod chunker;
pub(crate) mod gearcut;
pub(crate) mod zeros;
