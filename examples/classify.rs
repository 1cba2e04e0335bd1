//! Classify Kubernetes objects as one deployment object and print the assessment.
//!
//! ```text
//! cargo run --example classify -- [--now RFC3339] [--explain] FILE...
//! kubectl get deploy,rs,pods -l app=web -o json | cargo run --example classify -- -
//! ```
//!
//! Files hold JSON or YAML: single objects, `kind: List`, JSON arrays or multi-document
//! YAML; `-` reads standard input. Exit code 2 names the file and what is wrong with it.
//! `--explain` adds, after the JSON, one line per finding: the rule that fired and the
//! time it measured its grace from (and how long before `--now` that was).

use std::io::Read;
use std::process::ExitCode;

use brokkr::health::{HealthPolicy, Observations, classify, explain};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

const USAGE: &str = "usage: classify [--now RFC3339] [--explain] FILE... (FILE may be - for stdin)";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut now = Utc::now();
    let mut files = Vec::new();
    let mut explained = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--now" => {
                let value = args.next().ok_or("--now needs an RFC 3339 time")?;
                now = DateTime::parse_from_rfc3339(&value)
                    .map_err(|e| format!("--now {value:?}: {e}"))?
                    .with_timezone(&Utc);
            }
            "--explain" => explained = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}\n{USAGE}")),
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        return Err(USAGE.to_owned());
    }
    let mut observations = Observations::default();
    for file in &files {
        let text = read(file).map_err(|e| format!("{file}: {e}"))?;
        for value in documents(&text).map_err(|e| format!("{file}: {e}"))? {
            observations
                .push_value(value)
                .map_err(|e| format!("{file}: {e}"))?;
        }
    }
    let assessment = classify(&observations, now, &HealthPolicy::default());
    let json = serde_json::to_string_pretty(&assessment).map_err(|e| e.to_string())?;
    if !explained {
        return Ok(json);
    }
    let why = explain(&assessment, now);
    let why = if why.is_empty() {
        "no findings: every rule passed\n".to_owned()
    } else {
        why
    };
    Ok(format!("{json}\n\n{}", why.trim_end()))
}

fn read(file: &str) -> std::io::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}

/// The objects in a file: JSON (objects, arrays of them, or a stream of either) or
/// multi-document YAML.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // One value, or several in a row (`kubectl get -w -o json` prints a stream).
        let mut values = Vec::new();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match value.map_err(|e| format!("invalid JSON: {e}"))? {
                Value::Array(items) => values.extend(items),
                other => values.push(other),
            }
        }
        return Ok(values);
    }
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| format!("invalid YAML: {e}"))?;
        if !value.is_null() {
            values.push(value);
        }
    }
    if values.is_empty() {
        return Err("no Kubernetes objects found".to_owned());
    }
    Ok(values)
}
