//! Byte sizes as users write them: `100Mi`, `4MB`, `512Ki`, `1G`, `1048576`, or a JSON number.
//! Binary suffixes (`Ki`, `Mi`, `Gi`) are powers of 1024, decimal ones (`K`/`kB`, `M`/`MB`, `G`/`GB`) of 1000,
//! as in Kubernetes quantities.

use serde::{Deserialize, Deserializer, de};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits_end);
        if number.is_empty() {
            return Err(format!("size `{text}` must start with a whole number (e.g. 100Mi, 4MB, 1048576)"));
        }
        let number: u64 = number.parse().map_err(|_| format!("size `{text}` is too large"))?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "K" | "k" | "KB" | "kB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            other => return Err(format!("size `{text}`: unknown unit `{other}` (use Ki, Mi, Gi, KB, MB, GB or none)")),
        };
        number.checked_mul(scale).map(Self).ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, scale) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if n >= scale && n.is_multiple_of(scale) {
                return write!(f, "{}{unit}", n / scale);
            }
        }
        write!(f, "{n} bytes")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 100Mi, 4MB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!("size {v} must be a whole number of bytes")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units() {
        for (text, want) in [
            ("100Mi", 100 << 20),
            ("128Mi", 128 << 20),
            ("4MB", 4_000_000),
            ("4M", 4_000_000),
            ("512Ki", 512 << 10),
            ("1Gi", 1 << 30),
            ("2kB", 2000),
            ("1048576", 1_048_576),
            (" 7 ", 7),
            ("0", 0),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(want)), "{text}");
        }
        for bad in ["", "Mi", "1.5Mi", "-1", "10 parsecs", "99999999999999999999", "18446744073709551615Gi"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_numbers_and_strings() {
        let v: Vec<ByteSize> = serde_json::from_str(r#"[1024, "1Ki", "2MB"]"#).unwrap();
        assert_eq!(v, vec![ByteSize(1024), ByteSize(1024), ByteSize(2_000_000)]);
        assert!(serde_json::from_str::<ByteSize>("-5").is_err());
        assert!(serde_json::from_str::<ByteSize>("1.5").is_err());
    }

    #[test]
    fn display() {
        assert_eq!(ByteSize(128 << 20).to_string(), "128Mi");
        assert_eq!(ByteSize(4_000_000).to_string(), "4000000 bytes");
    }

    proptest! {
        #[test]
        fn display_parses_back(n in any::<u32>(), shift in 0u32..3) {
            let size = ByteSize(u64::from(n) << (10 * shift));
            let shown = size.to_string();
            let text = shown.trim_end_matches(" bytes");
            prop_assert_eq!(ByteSize::parse(text), Ok(size));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = ByteSize::parse(&s);
        }
    }
}
