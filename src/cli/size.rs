//! Sizes as users write them (`1MiB`, `512KiB`, `65536`), for flags and the config file.

/// A size that must fit in 32 bits (chunk and pack sizes).
pub fn parse_size(s: &str) -> Result<u32, String> {
    parse_size_u64(s).and_then(|v| u32::try_from(v).map_err(|_| format!("size too large: {s:?}")))
}

/// A size of memory (cache sizes).
pub fn parse_size_usize(s: &str) -> Result<usize, String> {
    parse_size_u64(s).and_then(|v| usize::try_from(v).map_err(|_| format!("size too large: {s:?}")))
}

pub fn parse_size_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(format!("unknown size unit in {s:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size_u64("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size_u64("65536"), Ok(65536));
        assert!(parse_size("8GiB").is_err());
        assert!(parse_size_u64("1 TiB").is_err());
    }
}
