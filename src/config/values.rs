//! Pure parsers and formatters for config values: durations, byte sizes, addresses, loopback
//! hosts, and the "did you mean" hints for mistyped keys. Nothing here reads a file or the
//! environment, so every function is tested on its own.

use std::net::IpAddr;
use std::time::Duration;

use super::{DURATION, SIZE};

/// Whether `host` names this machine: `localhost`, an address in 127.0.0.0/8, or `::1`
/// (also written as an IPv4-mapped address). Other names are not resolved, since a resolver
/// could be made to answer anything.
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost") || host.parse().is_ok_and(is_loopback_ip)
}

pub(super) fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parses a humane duration: one or more groups of a whole number and a unit (`ms`, `s`, `m`,
/// `h`, `d`), as in `"500ms"`, `"90s"` or `"1h30m"`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("expected {DURATION}, found {text:?}");
    let mut chars = text.trim().chars().peekable();
    let mut total_ms: u64 = 0;
    let mut groups = 0;
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut number: u64 = 0;
        let mut digits = 0;
        while let Some(digit) = chars.next_if(char::is_ascii_digit) {
            let value = u64::from(digit.to_digit(10).unwrap_or(0));
            number = number
                .checked_mul(10)
                .and_then(|n| n.checked_add(value))
                .ok_or_else(|| format!("{text:?} is too long a duration"))?;
            digits += 1;
        }
        if digits == 0 {
            return Err(invalid());
        }
        let mut unit = String::new();
        while let Some(letter) = chars.next_if(char::is_ascii_alphabetic) {
            unit.push(letter);
        }
        let unit_ms: u64 = match unit.as_str() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "expected {DURATION}, found {text:?}, which has no unit"
                ));
            }
            _ => return Err(invalid()),
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| ms.checked_add(total_ms))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        groups += 1;
    }
    if groups == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the largest unit that represents it exactly, the inverse of
/// [`parse_duration`] for whole milliseconds.
pub(super) fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, unit_ms) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(unit_ms) {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

const SIZE_UNITS: [(&str, u64); 7] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses a byte size: a whole number, optionally followed by `B`, `KB`, `MB`, `GB` (powers of
/// 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), in any letter case.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let unit = unit.trim();
    let multiplier = if unit.is_empty() {
        Some(1)
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, bytes)| *bytes)
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("expected {SIZE}, found {text:?}"))?;
    let multiplier = multiplier.ok_or_else(|| format!("expected {SIZE}, found {text:?}"))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

/// Writes a size in the largest unit that represents it exactly, preferring binary units.
pub(super) fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_owned();
    }
    SIZE_UNITS
        .iter()
        .find(|(_, unit)| *unit > 1 && bytes.is_multiple_of(*unit))
        .map_or_else(
            || bytes.to_string(),
            |(name, unit)| format!("{}{name}", bytes / unit),
        )
}

/// Checks the `local@domain` shape of an address and lower-cases it. This is deliberately
/// narrower than RFC 5322: the shared address is typed by an operator, and quoted local parts
/// or comments there are far more likely to be mistakes than intent.
pub(super) fn parse_address(text: &str) -> Result<String, String> {
    let invalid =
        || format!("expected an email address such as \"help@charity.example\", found {text:?}");
    let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"\\@".contains(c));
    let domain_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if local_ok && domain_ok {
        Ok(text.to_lowercase())
    } else {
        Err(invalid())
    }
}

/// A key as written in messages: bare if TOML would accept it bare, quoted otherwise, so that
/// odd characters in a hostile or mistyped key cannot garble the message.
pub(super) fn display_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// `" (did you mean \"port\"?)"` when a known name is within two edits of `unknown`.
pub(super) fn suggestion<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> String {
    nearest(unknown, known)
        .map(|name| format!(" (did you mean {name:?}?)"))
        .unwrap_or_default()
}

/// The known name closest to `unknown`, if it is within two edits: close enough to be a typo.
pub(super) fn nearest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|name| (edit_distance(unknown, name), name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, one row at a time.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, from) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, to) in b.iter().enumerate() {
            let substitute = previous
                .get(j)
                .map_or(usize::MAX, |d| d + usize::from(from != *to));
            let delete = previous.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insert = current.last().map_or(usize::MAX, |d| d + 1);
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}
