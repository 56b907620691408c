//! Durations as users write them in configs: `250ms`, `30s`, `5m`, `1h`, or a number of seconds.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits_end);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("duration `{text}` must be a whole number with a unit (e.g. 250ms, 30s, 5m, 1h)"))?;
        let millis = match unit.trim() {
            "ms" => Some(number),
            "" | "s" => number.checked_mul(1_000),
            "m" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            other => return Err(format!("duration `{text}`: unknown unit `{other}` (use ms, s, m or h)")),
        };
        millis.map(|ms| Self(Duration::from_millis(ms))).ok_or_else(|| format!("duration `{text}` is too long"))
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 30s, 5m or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigDuration, E> {
                v.checked_mul(1_000)
                    .map(|ms| ConfigDuration(Duration::from_millis(ms)))
                    .ok_or_else(|| E::custom("too long"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
                u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative")).and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(ConfigDuration::parse("250ms").unwrap().as_millis(), 250);
        assert_eq!(ConfigDuration::parse("30s").unwrap().as_millis(), 30_000);
        assert_eq!(ConfigDuration::parse("5m").unwrap().as_millis(), 300_000);
        assert_eq!(ConfigDuration::parse("2h").unwrap().as_millis(), 7_200_000);
        assert_eq!(ConfigDuration::parse("7").unwrap().as_millis(), 7_000);
        assert!(ConfigDuration::parse("5 days").unwrap_err().contains("unknown unit `days`"));
        assert!(ConfigDuration::parse("-1s").is_err());
        assert!(ConfigDuration::parse("99999999999999999h").unwrap_err().contains("too long"));
        let d: ConfigDuration = serde_json::from_str("90").unwrap();
        assert_eq!(d.as_millis(), 90_000);
    }
}
