//! Durations as written in Traefik files (`"10s"`, `"1m30s"`, or an integer number of seconds)
//! and a Go `time.ParseDuration` compatible parser.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scalar that may be written as a string or an integer, kept exactly as written so it
/// round-trips (used for durations and ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StrOrInt {
    /// Written as an integer.
    Int(i64),
    /// Written as a string.
    Str(String),
}

impl fmt::Display for StrOrInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrOrInt::Int(i) => write!(f, "{i}"),
            StrOrInt::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for StrOrInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StrOrInt::Int(i) => s.serialize_i64(*i),
            StrOrInt::Str(v) => s.serialize_str(v),
        }
    }
}

struct StrOrIntVisitor(&'static str);

impl Visitor<'_> for StrOrIntVisitor {
    type Value = StrOrInt;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
        i64::try_from(v)
            .map(StrOrInt::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrOrInt, E> {
        if v.fract() == 0.0 && (-9.0e18..=9.0e18).contains(&v) {
            // Exactly integral and in range, so the cast is lossless.
            #[allow(clippy::cast_possible_truncation)]
            return Ok(StrOrInt::Int(v as i64));
        }
        Err(E::invalid_type(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Str(v))
    }
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrIntVisitor("a string or an integer"))
    }
}

/// A duration exactly as written: a Go duration string (`"10s"`, `"1m30s"`, `"500ms"`) or an
/// integer number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Duration(pub StrOrInt);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrIntVisitor(
            "a duration such as \"10s\" or an integer number of seconds",
        ))
        .map(Duration)
    }
}

impl Duration {
    /// A duration written as a string.
    pub fn from_str_value(s: impl Into<String>) -> Self {
        Duration(StrOrInt::Str(s.into()))
    }

    /// Signed nanoseconds. Errors carry a human message (without the value).
    pub fn as_nanos(&self) -> Result<i64, String> {
        match &self.0 {
            StrOrInt::Int(secs) => secs
                .checked_mul(1_000_000_000)
                .ok_or_else(|| "duration out of range".to_string()),
            StrOrInt::Str(s) => parse_go_duration(s),
        }
    }

    /// As a `std::time::Duration`; negative values are an error.
    pub fn to_std(&self) -> Result<std::time::Duration, String> {
        let n = self.as_nanos()?;
        u64::try_from(n)
            .map(std::time::Duration::from_nanos)
            .map_err(|_| "duration must not be negative".to_string())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parse a Go duration string (`time.ParseDuration`): an optional sign followed by one or more
/// decimal numbers with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), e.g. `"1h30m"`,
/// `"1.5s"`, `"-300ms"`. `"0"` alone is valid. A plain integer (`"10"`) is read as seconds,
/// as Traefik's configuration loader does. Returns signed nanoseconds.
pub fn parse_go_duration(input: &str) -> Result<i64, String> {
    let s = input;
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err("missing number".to_string());
    }
    if body.bytes().all(|b| b.is_ascii_digit()) {
        // Plain integer: seconds.
        let secs: i64 = body
            .parse()
            .map_err(|_| "duration out of range".to_string())?;
        let n = secs
            .checked_mul(1_000_000_000)
            .ok_or_else(|| "duration out of range".to_string())?;
        return Ok(if neg { -n } else { n });
    }
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut total: i128 = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let int_part: String = chars[start..i].iter().collect();
        let mut frac_part = String::new();
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let fs = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = chars[fs..i].iter().collect();
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err("expected a number".to_string());
        }
        let us = i;
        while i < chars.len() && !chars[i].is_ascii_digit() && chars[i] != '.' {
            i += 1;
        }
        let unit: String = chars[us..i].iter().collect();
        let mult: i128 = match unit.as_str() {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit (expected ns, us, ms, s, m or h)".to_string()),
            other => {
                return Err(format!(
                    "unknown unit {:?} (expected ns, us, ms, s, m or h)",
                    other
                ))
            }
        };
        let mut value: i128 = 0;
        for c in int_part.chars() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(c as u8 - b'0')))
                .ok_or_else(|| "duration out of range".to_string())?;
            if value > i128::from(i64::MAX) {
                return Err("duration out of range".to_string());
            }
        }
        let mut part = value
            .checked_mul(mult)
            .ok_or_else(|| "duration out of range".to_string())?;
        // Fractional part: scale by the unit, truncating like Go.
        let mut scale = mult;
        for c in frac_part.chars() {
            if scale < 10 {
                break;
            }
            scale /= 10;
            part += i128::from(c as u8 - b'0') * scale;
        }
        total += part;
        if total > i128::from(i64::MAX) {
            return Err("duration out of range".to_string());
        }
    }
    let total = i64::try_from(total).map_err(|_| "duration out of range".to_string())?;
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-100ms"), Ok(-100_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("10"), Ok(10_000_000_000));
        assert_eq!(parse_go_duration("2us"), Ok(2_000));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("10x").is_err());
        assert!(parse_go_duration("1.s.").is_err());
        assert!(parse_go_duration("-").is_err());
        assert!(parse_go_duration("99999999999999999999h").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
        assert_eq!(
            parse_go_duration("10q"),
            Err("unknown unit \"q\" (expected ns, us, ms, s, m or h)".to_string())
        );
        assert_eq!(Duration(StrOrInt::Int(3)).as_nanos(), Ok(3_000_000_000));
        assert!(Duration(StrOrInt::Int(i64::MAX)).as_nanos().is_err());
    }
}
