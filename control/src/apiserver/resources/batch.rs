//! batch/v1: jobs (upstream defaults, the generated selector and controller-uid labels) and
//! cronjobs (schedule syntax), with their Tables.

use serde_json::{Value, json};

use super::workloads::{
    CONTAINERS_COLUMN, IMAGES_COLUMN, SELECTOR_COLUMN, containers_and_images, object_at,
    selector_immutable, selector_string, set_default, template_defaults, validate_selector,
    validate_template,
};
use super::{ResourceDef, STATUS_SUBRESOURCE, Strategy, TableDef, cron};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, age, human_duration, object_age};

const BATCH: ResourceDef = ResourceDef {
    group: "batch",
    version: "v1",
    categories: &["all"],
    subresources: &[STATUS_SUBRESOURCE],
    tracks_generation: true,
    ..ResourceDef::BASE
};

// ---- jobs

pub const JOBS: ResourceDef = ResourceDef {
    plural: "jobs",
    singular: "job",
    kind: "Job",
    strategy: Strategy {
        defaults: job_defaults,
        prepare_create: job_create,
        validate: job_validate,
        validate_update: job_validate_update,
        allocate: None,
    },
    table: TableDef {
        columns: JOB_COLUMNS,
        row: job_row,
    },
    ..BATCH
};

fn job_defaults(job: &mut Value) {
    if let Some(spec) = object_at(job, &["spec"]) {
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        let per_index = spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null());
        set_default(
            spec,
            "backoffLimit",
            json!(if per_index { i32::MAX } else { 6 }),
        );
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        set_default(spec, "podReplacementPolicy", json!(replacement));
    }
    template_defaults(job, &["spec", "template"]);
}

/// Upstream's generated selector: the job's uid, also put on the template's labels.
fn job_create(job: &mut Value) {
    job["status"] = json!({});
    if job["spec"]["manualSelector"] == true {
        return;
    }
    let uid = job["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(labels) = object_at(job, &["spec", "template", "metadata", "labels"]) {
        labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
        labels.insert("batch.kubernetes.io/job-name".into(), json!(name));
        labels.insert("controller-uid".into(), json!(uid));
        labels.insert("job-name".into(), json!(name));
    }
    job["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
}

fn non_negative(spec: &Value, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec[field].as_i64()
        && n < 0
    {
        errs.push(FieldError::invalid_raw(
            format!("spec.{field}"),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_job_spec(spec: &Value, prefix: &str, errs: &mut Vec<FieldError>) {
    let mut local = Vec::new();
    for f in ["parallelism", "completions", "backoffLimit"] {
        non_negative(spec, f, &mut local);
    }
    if let Some(n) = spec["activeDeadlineSeconds"].as_i64()
        && n <= 0
    {
        local.push(FieldError::invalid_raw(
            "spec.activeDeadlineSeconds",
            n,
            "must be greater than 0",
        ));
    }
    if let Some(m) = spec["completionMode"].as_str() {
        const OK: &[&str] = &["NonIndexed", "Indexed"];
        if !OK.contains(&m) {
            local.push(FieldError::not_supported("spec.completionMode", m, OK));
        }
    }
    validate_template(&spec["template"], "spec.template", &mut local);
    match spec["template"]["spec"]["restartPolicy"].as_str() {
        Some("OnFailure" | "Never") => {}
        Some(p) => local.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            p,
            &["OnFailure", "Never"],
        )),
        None => local.push(FieldError::required("spec.template.spec.restartPolicy")),
    }
    validate_pod_failure_policy(spec, &mut local);
    for mut e in local {
        e.field = format!("{prefix}{}", e.field);
        errs.push(e);
    }
}

/// podFailurePolicy: only with restartPolicy Never; known actions and operators; exit code
/// lists that are not empty (and without 0 for `In`).
fn validate_pod_failure_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(rules) = spec["podFailurePolicy"]["rules"].as_array() else {
        return;
    };
    if spec["template"]["spec"]["restartPolicy"].as_str() != Some("Never") {
        errs.push(FieldError::invalid_raw(
            "spec.template.spec.restartPolicy",
            &spec["template"]["spec"]["restartPolicy"],
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.podFailurePolicy.rules[{i}]");
        const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
        let action = rule["action"].as_str().unwrap_or_default();
        if !ACTIONS.contains(&action) {
            errs.push(FieldError::not_supported(
                format!("{at}.action"),
                action,
                ACTIONS,
            ));
        }
        let codes = &rule["onExitCodes"];
        let conds = &rule["onPodConditions"];
        match (
            codes.is_object(),
            conds.as_array().is_some_and(|c| !c.is_empty()),
        ) {
            (true, true) => errs.push(FieldError::invalid_raw(
                format!("{at}.onExitCodes"),
                codes,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => errs.push(FieldError::invalid_raw(
                at.clone(),
                rule,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
        if codes.is_object() {
            const OPS: &[&str] = &["In", "NotIn"];
            let op = codes["operator"].as_str().unwrap_or_default();
            if !OPS.contains(&op) {
                errs.push(FieldError::not_supported(
                    format!("{at}.onExitCodes.operator"),
                    op,
                    OPS,
                ));
            }
            let values = codes["values"].as_array().cloned().unwrap_or_default();
            if values.is_empty() {
                errs.push(FieldError::required(format!("{at}.onExitCodes.values")));
            }
            if op == "In" && values.iter().any(|v| v.as_i64() == Some(0)) {
                errs.push(FieldError::invalid_raw(
                    format!("{at}.onExitCodes.values"),
                    0,
                    "must not be 0 for the In operator",
                ));
            }
        }
    }
}

/// Upstream's update rules: the selector, completionMode and podFailurePolicy never change;
/// completions only together with parallelism in an Indexed Job (elastic Indexed Jobs); the
/// template only while the Job is suspended and has never started.
fn job_validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = selector_immutable(new, old);
    let (n, o) = (&new["spec"], &old["spec"]);
    for f in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex"] {
        if n[f] != o[f] {
            errs.push(FieldError::invalid_raw(
                format!("spec.{f}"),
                &n[f],
                "field is immutable",
            ));
        }
    }
    let elastic = n["completionMode"] == "Indexed" && n["completions"] == n["parallelism"];
    if n["completions"] != o["completions"] && !elastic {
        errs.push(FieldError::invalid_raw(
            "spec.completions",
            &n["completions"],
            "field is immutable",
        ));
    }
    let never_started = o["suspend"] == true && old["status"]["startTime"].is_null();
    if n["template"] != o["template"] && !never_started {
        errs.push(FieldError::invalid_raw(
            "spec.template",
            &n["template"],
            "field is immutable",
        ));
    }
    errs
}

fn job_validate(job: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_selector(&job["spec"], "job", &mut errs);
    validate_job_spec(&job["spec"], "", &mut errs);
    errs
}

static JOB_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Completions",
        "string",
        "",
        "The desired number of successfully finished pods the job should be run with.",
        0,
    ),
    Column::new(
        "Duration",
        "string",
        "",
        "Time required to complete the job.",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

fn job_row(job: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = &job["spec"];
    let succeeded = job["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match (spec["completions"].as_i64(), spec["parallelism"].as_i64()) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let duration = match (
        parse(&job["status"]["startTime"]),
        parse(&job["status"]["completionTime"]),
    ) {
        (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
        (Some(_), None) => age(&job["status"]["startTime"], now),
        _ => String::new(),
    };
    let (containers, images) = containers_and_images(&spec["template"]);
    vec![
        job["metadata"]["name"].clone(),
        json!(completions),
        json!(duration),
        object_age(job, now),
        containers,
        images,
        json!(selector_string(&spec["selector"])),
    ]
}

// ---- cronjobs

pub const CRONJOBS: ResourceDef = ResourceDef {
    plural: "cronjobs",
    singular: "cronjob",
    kind: "CronJob",
    short_names: &["cj"],
    strategy: Strategy {
        defaults: cronjob_defaults,
        prepare_create: cronjob_create,
        validate: cronjob_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: CRONJOB_COLUMNS,
        row: cronjob_row,
    },
    ..BATCH
};

fn cronjob_defaults(cj: &mut Value) {
    if let Some(spec) = object_at(cj, &["spec"]) {
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
    }
    if cj["spec"]["jobTemplate"].is_object() {
        template_defaults(cj, &["spec", "jobTemplate", "spec", "template"]);
    }
}

fn cronjob_create(cj: &mut Value) {
    cj["status"] = json!({});
}

fn cronjob_validate(cj: &Value) -> Vec<FieldError> {
    let spec = &cj["spec"];
    let mut errs = Vec::new();
    match spec["schedule"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.schedule")),
        Some(s) => {
            if let Err(why) = cron::check(s) {
                errs.push(FieldError::invalid("spec.schedule", s, why));
            }
        }
    }
    if let Some(tz) = spec["timeZone"].as_str()
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        errs.push(FieldError::invalid(
            "spec.timeZone",
            tz,
            format!("unknown time zone {tz}"),
        ));
    }
    if let Some(p) = spec["concurrencyPolicy"].as_str() {
        const OK: &[&str] = &["Allow", "Forbid", "Replace"];
        if !OK.contains(&p) {
            errs.push(FieldError::not_supported("spec.concurrencyPolicy", p, OK));
        }
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(spec, f, &mut errs);
    }
    if spec["jobTemplate"].is_null() {
        errs.push(FieldError::required("spec.jobTemplate"));
    } else {
        validate_job_spec(&spec["jobTemplate"]["spec"], "spec.jobTemplate.", &mut errs);
    }
    errs
}

static CRONJOB_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Schedule",
        "string",
        "",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        0,
    ),
    Column::new(
        "Timezone",
        "string",
        "",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
        0,
    ),
    Column::new(
        "Suspend",
        "boolean",
        "",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
        0,
    ),
    Column::new(
        "Active",
        "integer",
        "",
        "A list of pointers to currently running jobs.",
        0,
    ),
    Column::new(
        "Last Schedule",
        "string",
        "",
        "Information when was the last time the job was successfully scheduled.",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

fn cronjob_row(cj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = &cj["spec"];
    let last = match &cj["status"]["lastScheduleTime"] {
        Value::String(_) => age(&cj["status"]["lastScheduleTime"], now),
        _ => "<none>".into(),
    };
    let template = &spec["jobTemplate"]["spec"]["template"];
    let (containers, images) = containers_and_images(template);
    vec![
        cj["metadata"]["name"].clone(),
        json!(spec["schedule"].as_str().unwrap_or_default()),
        json!(spec["timeZone"].as_str().unwrap_or("<none>")),
        json!(spec["suspend"].as_bool().unwrap_or(false)),
        json!(cj["status"]["active"].as_array().map_or(0, Vec::len)),
        json!(last),
        object_age(cj, now),
        containers,
        images,
        json!(selector_string(&spec["jobTemplate"]["spec"]["selector"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({
            "metadata": {"name": "j", "uid": "u-1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "j", "image": "busybox"}]}}}
        })
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut j = job();
        job_defaults(&mut j);
        job_create(&mut j);
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "j");
        assert!(job_validate(&j).is_empty(), "{:?}", job_validate(&j));

        let mut p = job();
        p["spec"]["parallelism"] = json!(3);
        job_defaults(&mut p);
        assert!(p["spec"].get("completions").is_none());
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(job_row(&p, now)[1], "0/1 of 3");
    }

    #[test]
    fn job_needs_a_restart_policy_jobs_allow() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        job_defaults(&mut j);
        job_create(&mut j);
        let errs = job_validate(&j);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.spec.restartPolicy");
    }

    #[test]
    fn job_updates_upstream_allows() {
        let mut old = job();
        job_defaults(&mut old);
        job_create(&mut old);
        old["status"] = json!({"startTime": "2024-01-01T00:00:00Z"});
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        new["spec"]["parallelism"] = json!(4);
        assert!(job_validate_update(&new, &old).is_empty());
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        new["spec"]["completions"] = json!(3);
        let fields: Vec<String> = job_validate_update(&new, &old)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["spec.completions", "spec.template"]);
        // A suspended Job that never started may change its template.
        old["spec"]["suspend"] = json!(true);
        old["status"] = json!({});
        new["spec"]["completions"] = json!(1);
        assert!(job_validate_update(&new, &old).is_empty());
        // Elastic Indexed Jobs change completions with parallelism.
        let mut idx = old.clone();
        idx["spec"]["completionMode"] = json!("Indexed");
        let mut grown = idx.clone();
        grown["spec"]["completions"] = json!(4);
        grown["spec"]["parallelism"] = json!(4);
        assert!(job_validate_update(&grown, &idx).is_empty());
    }

    #[test]
    fn pod_failure_policy_rules() {
        let mut j = job();
        j["spec"]["podFailurePolicy"] = json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        ]});
        job_defaults(&mut j);
        job_create(&mut j);
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        assert!(job_validate(&j).is_empty(), "{:?}", job_validate(&j));
        j["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] = json!([0]);
        j["spec"]["podFailurePolicy"]["rules"][1]["action"] = json!("Retry");
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        let fields: Vec<String> = job_validate(&j).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.template.spec.restartPolicy",
                "spec.podFailurePolicy.rules[0].onExitCodes.values",
                "spec.podFailurePolicy.rules[1].action"
            ]
        );
    }

    #[test]
    fn job_row_durations() {
        let mut j = job();
        job_defaults(&mut j);
        j["status"] = json!({"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:07Z"});
        let now: jiff::Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        let cells = job_row(&j, now);
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "7s");
        assert_eq!(cells.len(), JOB_COLUMNS.len());
    }

    #[test]
    fn cronjobs() {
        let mut cj = json!({
            "metadata": {"name": "cj", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}
        });
        cronjob_defaults(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert!(
            cronjob_validate(&cj).is_empty(),
            "{:?}",
            cronjob_validate(&cj)
        );
        let now: jiff::Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        let cells = cronjob_row(&cj, now);
        assert_eq!(cells[1], "*/5 * * * *");
        assert_eq!(cells[3], false);
        assert_eq!(cells[5], "<none>");
        cj["spec"]["timeZone"] = json!("Mars/Olympus");
        let errs = cronjob_validate(&cj);
        assert_eq!(errs[0].field, "spec.timeZone");
        cj["spec"]["timeZone"] = json!("Europe/Berlin");
        assert!(cronjob_validate(&cj).is_empty());
        cj["spec"]["schedule"] = json!("61 * * * *");
        let errs = cronjob_validate(&cj);
        assert_eq!(errs[0].field, "spec.schedule");
        assert!(
            errs[0]
                .body()
                .starts_with(r#"Invalid value: "61 * * * *": end of range (61)"#)
        );
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let errs = cronjob_validate(&cj);
        assert_eq!(
            errs[1].field,
            "spec.jobTemplate.spec.template.spec.restartPolicy"
        );
    }
}
