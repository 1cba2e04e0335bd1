//! Errors of the Postgres store and how they map to core errors.

use brokkr_core::Error;

/// What went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    /// The connection URL or settings are unusable.
    #[error("invalid database configuration: {0}")]
    Config(#[source] sqlx::Error),
    /// A query failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// SQLSTATE classes that mean "try again later" rather than "you sent something wrong".
fn transient(code: &str) -> bool {
    // 08: connection exception, 53: insufficient resources, 57: operator intervention
    // (query_canceled by statement_timeout, admin shutdown), 40: transaction rollback
    // (serialization failure, deadlock).
    ["08", "53", "57", "40"]
        .iter()
        .any(|class| code.starts_with(class))
}

impl From<PgStoreError> for Error {
    fn from(err: PgStoreError) -> Self {
        match err {
            PgStoreError::Sqlx(sqlx::Error::Database(db)) => {
                let code = db
                    .code()
                    .map(std::borrow::Cow::into_owned)
                    .unwrap_or_default();
                match code.as_str() {
                    "23505" => Error::Conflict(db.message().to_owned()),
                    "23503" => Error::NotFound {
                        kind: "referenced entity",
                        id: db.constraint().unwrap_or_default().to_owned(),
                    },
                    // 22: data exception (NUL in text, out of range), 54: program limit
                    // exceeded (a value too large to index): what the client sent.
                    c if c.starts_with("22") || c.starts_with("54") => Error::invalid(
                        "body",
                        format!("the database refused a value: {}", db.message()),
                    ),
                    c if transient(c) => Error::Unavailable(format!("database: {}", db.message())),
                    _ => Error::Unavailable(format!("database error {code}: {}", db.message())),
                }
            }
            PgStoreError::Sqlx(sqlx::Error::RowNotFound) => Error::NotFound {
                kind: "row",
                id: String::new(),
            },
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// `?`-friendly conversion of sqlx results into core results.
pub(crate) trait Db<T> {
    /// Maps the error through [`PgStoreError`].
    fn db(self) -> Result<T, Error>;
}

impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, Error> {
        self.map_err(|e| PgStoreError::Sqlx(e).into())
    }
}
