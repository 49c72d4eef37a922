//! Cron schedule syntax as CronJobs accept it (the robfig/cron standard parser): five fields
//! (minute hour day-of-month month day-of-week) with `*`, `?`, lists, ranges, steps and month /
//! weekday names, or a descriptor (`@hourly`, `@every 1h30m`, ...).

/// Why a schedule is not valid (the text Kubernetes puts after the value).
pub fn check(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if s.is_empty() {
        return Err("empty spec string".into());
    }
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(d) = s.strip_prefix('@') {
        return descriptor(d);
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    field(fields[0], 0, 59, None, false)?;
    field(fields[1], 0, 23, None, false)?;
    field(fields[2], 1, 31, None, true)?;
    field(fields[3], 1, 12, Some((MONTHS, 1)), false)?;
    field(fields[4], 0, 6, Some((DAYS, 0)), true)?;
    Ok(())
}

fn descriptor(d: &str) -> Result<(), String> {
    match d {
        "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
        _ => match d.strip_prefix("every ") {
            Some(dur) if go_duration_ok(dur.trim()) => Ok(()),
            Some(dur) => Err(format!("failed to parse duration @every {dur}")),
            None => Err(format!("unrecognized descriptor: @{d}")),
        },
    }
}

/// Go's `time.ParseDuration` syntax: `1h30m`, `90s`, `1.5h`.
fn go_duration_ok(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn value(s: &str, min: u32, max: u32, names: Option<(&[&str], u32)>) -> Result<u32, String> {
    if let Some((list, base)) = names
        && let Some(i) = list.iter().position(|n| n.eq_ignore_ascii_case(s))
    {
        return Ok(i as u32 + base);
    }
    let n: u32 = s.parse().map_err(|_| {
        format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
    })?;
    if n < min {
        return Err(format!(
            "beginning of range ({n}) below minimum ({min}): {s}"
        ));
    }
    if n > max {
        return Err(format!("end of range ({n}) above maximum ({max}): {s}"));
    }
    Ok(n)
}

fn field(
    f: &str,
    min: u32,
    max: u32,
    names: Option<(&[&str], u32)>,
    question_ok: bool,
) -> Result<(), String> {
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || (question_ok && range == "?") {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, min, max, names)?, value(b, min, max, names)?)
        } else {
            let v = value(range, min, max, names)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo > hi {
            return Err(format!(
                "beginning of range ({lo}) beyond end of range ({hi}): {part}"
            ));
        }
        if let Some(s) = step {
            match s.parse::<u32>() {
                Ok(0) => return Err(format!("step of range should be a positive number: {part}")),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_cronjobs_accept() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * *",
            "0,15,30,45 9-17 * * MON-FRI",
            "30 2 1 jan,jul ?",
            "5/10 * * * *",
            "@hourly",
            "@every 1h30m",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_schedules() {
        assert_eq!(
            check("* * * *").unwrap_err(),
            "expected exactly 5 fields, found 4: * * * *"
        );
        assert!(
            check("60 * * * *")
                .unwrap_err()
                .contains("above maximum (59)")
        );
        assert!(
            check("* * 0 * *")
                .unwrap_err()
                .contains("below minimum (1)")
        );
        assert!(check("*/0 * * * *").unwrap_err().contains("positive"));
        assert!(
            check("x * * * *")
                .unwrap_err()
                .contains("failed to parse int")
        );
        assert!(check("5-1 * * * *").unwrap_err().contains("beyond end"));
        assert!(check("@often").is_err());
        assert!(check("TZ=UTC 0 * * * *").is_err());
        assert!(check("").is_err());
    }
}
