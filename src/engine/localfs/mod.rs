//! The local file system side of backup and restore: access relative to open directory
//! handles (`*at` calls with `O_NOFOLLOW`), and the thread pools sized for local disk I/O.

pub(crate) mod fsat;
pub(crate) mod threads;
