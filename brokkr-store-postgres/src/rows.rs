//! Reading rows back into core types, and enums to and from their text form.

use brokkr_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The JSON string form of a serde enum (`DeliveryState::Pending` → `pending`).
pub(crate) fn text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Parses a serde enum from its text form.
pub(crate) fn parse<T: DeserializeOwned>(column: &str, raw: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| corrupt(column, e))
}

/// Reads a JSON column into a typed value.
pub(crate) fn json<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let value: serde_json::Value = get(row, column)?;
    serde_json::from_value(value).map_err(|e| corrupt(column, e))
}

/// Reads a column.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

pub(crate) fn corrupt(column: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("unreadable column {column}: {err}"))
}

/// A non-negative count column as `u64`.
pub(crate) fn count(row: &PgRow, column: &str) -> Result<u64> {
    let n: i64 = get(row, column)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
