//! Kubernetes resource quantities ("250m", "1.5", "128Mi", "1e3", "2G") as integers, rounding up
//! as `Quantity.MilliValue()` / `Value()` do. Both the scheduler and the agent's cgroups use it.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
)]
pub struct QuantityError(pub String);

/// value = digits × 10^exp10 × 2^exp2 (sign separate).
struct Parsed {
    negative: bool,
    digits: i128,
    exp10: i32,
    exp2: u32,
}

fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(text.to_string());
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all: String = format!("{int}{frac}");
    let digits: i128 = all.parse().map_err(|_| err())?;
    let mut exp10 = -(frac.len() as i32);
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exp = other.strip_prefix(['e', 'E']).ok_or_else(err)?;
            let exp: i32 = exp.parse().map_err(|_| err())?;
            exp10 += exp;
        }
    }
    Ok(Parsed {
        negative,
        digits,
        exp10,
        exp2,
    })
}

/// `value × 10^scale`, rounded up (away from zero for positives), saturating.
fn scaled(q: &str, scale: i32) -> Result<i64, QuantityError> {
    let p = parse(q)?;
    let mut n = p.digits.checked_mul(1i128 << p.exp2).unwrap_or(i128::MAX);
    let e = p.exp10 + scale;
    if e >= 0 {
        for _ in 0..e {
            n = n.saturating_mul(10);
        }
    } else {
        let div = 10i128.checked_pow((-e) as u32).unwrap_or(i128::MAX);
        n = (n + div - 1) / div;
    }
    let n = n.min(i64::MAX as i128) as i64;
    Ok(if p.negative { -n } else { n })
}

/// CPU in millicores ("250m" → 250, "1.5" → 1500).
pub fn parse_cpu_millis(q: &Quantity) -> Result<i64, QuantityError> {
    scaled(&q.0, 3)
}

/// A byte (or plain count) quantity ("128Mi" → 134217728, "1G" → 1000000000).
pub fn parse_bytes(q: &Quantity) -> Result<i64, QuantityError> {
    scaled(&q.0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(parse_cpu_millis(&q("250m")), Ok(250));
        assert_eq!(parse_cpu_millis(&q("1.5")), Ok(1500));
        assert_eq!(parse_cpu_millis(&q("2")), Ok(2000));
        assert_eq!(
            parse_cpu_millis(&q("100u")),
            Ok(1),
            "rounds up like MilliValue"
        );
        assert_eq!(parse_bytes(&q("128Mi")), Ok(128 << 20));
        assert_eq!(parse_bytes(&q("1G")), Ok(1_000_000_000));
        assert_eq!(parse_bytes(&q("1e3")), Ok(1000));
        assert_eq!(parse_bytes(&q("1.5Gi")), Ok(1610612736));
        assert_eq!(parse_bytes(&q("0.5")), Ok(1));
        assert_eq!(parse_bytes(&q("-1k")), Ok(-1000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "12Qi", "m", "1e"] {
            assert!(parse_bytes(&q(bad)).is_err(), "{bad:?} should be rejected");
        }
    }
}
