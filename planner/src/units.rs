//! How quantities read in plans: bytes, counts, seconds and dollars, each in the unit a person
//! would pick.

/// `1.5 GB`, `320 KB`, `12 B` (decimal units, as cloud prices use).
pub fn bytes(b: f64) -> String {
    let units = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3)];
    for (name, size) in units {
        if b >= size {
            return format!("{} {name}", short(b / size));
        }
    }
    format!("{} B", b.round())
}

/// `6.0M`, `150k`, `42`.
pub fn count(n: f64) -> String {
    if n >= 1e9 {
        format!("{}G", short(n / 1e9))
    } else if n >= 1e6 {
        format!("{}M", short(n / 1e6))
    } else if n >= 1e4 {
        format!("{}k", short(n / 1e3))
    } else {
        format!("{}", n.round())
    }
}

/// `2.41 s`, `38 ms`, `410 µs`, `3 min 20 s`.
pub fn seconds(s: f64) -> String {
    if s >= 120.0 {
        let minutes = (s / 60.0).floor();
        format!("{minutes} min {:.0} s", s - minutes * 60.0)
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{} ms", short(s * 1e3))
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// `$0.0123`, `$1.25`: four significant digits below a dollar.
pub fn usd(d: f64) -> String {
    if d == 0.0 {
        "$0".to_string()
    } else if d >= 1.0 {
        format!("${d:.2}")
    } else {
        // Three significant digits: $0.0421, $0.000000761.
        let digits = (-d.log10()).floor().max(0.0) as usize + 3;
        format!("${d:.digits$}")
    }
}

/// Three significant digits without trailing noise.
fn short(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_naturally() {
        assert_eq!(bytes(1.5e9), "1.50 GB");
        assert_eq!(bytes(320e3), "320 KB");
        assert_eq!(bytes(12.0), "12 B");
        assert_eq!(count(6_001_215.0), "6.00M");
        assert_eq!(count(150_000.0), "150k");
        assert_eq!(seconds(0.00041), "410 µs");
        assert_eq!(seconds(0.0375), "37.5 ms");
        assert_eq!(seconds(200.0), "3 min 20 s");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(0.00000076123), "$0.000000761");
        assert_eq!(usd(1.254), "$1.25");
        assert_eq!(usd(0.0), "$0");
    }
}
