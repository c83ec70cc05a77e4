//! Loading: the file and the `CASEMAIL__SECTION__KEY` variables read, checked against the schema,
//! merged by the `config` crate and handed to validation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::fields::describe_io;
use super::raw::RawConfig;
use super::schema::{check_file_keys, schema_section};
use super::validate::validate;
use super::values::nearest;
use super::{Config, Error, Sources};

/// Reads the config file at `path`, applies `CASEMAIL__SECTION__KEY` variables from the
/// process environment, and validates the result.
pub fn load(path: &Path) -> Result<Config, Error> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name.to_owned(), value);
            }
            Err(_) => {
                if let Some(key) = env_var_key(name) {
                    return Err(Error {
                        file: path.to_owned(),
                        key,
                        reason: format!("environment variable {name} is not valid UTF-8"),
                    });
                }
            }
        }
    }
    load_with_env(path, &env)
}

/// Like [`load`], with `env` standing in for the process environment. Only the
/// `CASEMAIL__SECTION__KEY` variables and `CREDENTIALS_DIRECTORY` are read from it.
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Config, Error> {
    let file_error = |reason: String| Error {
        file: path.to_owned(),
        key: String::new(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        // The unit runs casemail as its own user, so a config installed root-only is the
        // first thing a new operator meets: say how to fix it.
        let hint = if err.kind() == std::io::ErrorKind::PermissionDenied {
            " (the service runs as the casemail user: make the directory and the file readable \
             by its group, e.g. `chgrp casemail` with modes 0750 and 0640)"
        } else {
            ""
        };
        file_error(format!(
            "cannot read the config file: {}{hint}",
            describe_io(&err)
        ))
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| file_error(describe_toml_error(&text, &err)))?;
    check_file_keys(path, &table)?;
    let overrides = EnvOverrides::collect(path, env)?;
    let sources = Sources {
        file: path,
        env_keys: overrides.keys,
        env,
    };

    // `try_parsing` stays off: it would turn a password such as "007" into the integer 7 and
    // back into "7". The config crate converts strings to numbers and booleans on demand, and
    // lists are split by `StringList`, so nothing is lost by leaving it off.
    let environment = ::config::Environment::with_prefix("CASEMAIL")
        .prefix_separator("__")
        .separator("__")
        .source(Some(overrides.vars));
    let raw: RawConfig = ::config::Config::builder()
        .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .and_then(::config::Config::try_deserialize)
        .map_err(|err| sources.translate(err))?;
    validate(raw, &sources)
}

/// The `CASEMAIL__SECTION__KEY` variables of an environment, checked against
/// [`SCHEMA`](super::schema::SCHEMA).
struct EnvOverrides {
    /// Dotted key to the variable that sets it.
    keys: BTreeMap<String, String>,
    /// The variables themselves, as the config crate's environment source wants them.
    vars: HashMap<String, String>,
}

impl EnvOverrides {
    fn collect(file: &Path, env: &HashMap<String, String>) -> Result<Self, Error> {
        let mut keys = BTreeMap::new();
        let mut vars = HashMap::new();
        // Sorted, so that with several bad variables the same one is always reported.
        let sorted: BTreeMap<&String, &String> = env.iter().collect();
        for (name, value) in sorted {
            let Some(key) = env_var_key(name) else {
                continue;
            };
            let error = |reason: String| Error {
                file: file.to_owned(),
                key: key.clone(),
                reason,
            };
            let known = key.split_once('.').and_then(|(section, field)| {
                let fields = schema_section(section)?;
                Some((fields.iter().any(|(known, _)| *known == field), fields))
            });
            match known {
                Some((true, _)) => {}
                Some((false, fields)) => {
                    let (section, field) = key.split_once('.').unwrap_or_default();
                    let hint = nearest(field, fields.iter().map(|(name, _)| *name))
                        .map(|near| {
                            let var = format!("CASEMAIL__{section}__{near}").to_uppercase();
                            format!(" (did you mean {var}?)")
                        })
                        .unwrap_or_default();
                    return Err(error(format!(
                        "unknown key set by environment variable {name}{hint}"
                    )));
                }
                None => {
                    return Err(error(format!(
                        "unknown key set by environment variable {name} (expected \
                         CASEMAIL__SECTION__KEY with a section such as IMAP)"
                    )));
                }
            }
            if let Some(previous) = keys.insert(key.clone(), name.clone()) {
                return Err(error(format!(
                    "set by both environment variables {previous} and {name}"
                )));
            }
            vars.insert(name.clone(), value.clone());
        }
        Ok(EnvOverrides { keys, vars })
    }
}

/// The dotted key a `CASEMAIL__SECTION__KEY` variable sets, computed the way the config crate
/// does it (lower-cased, `__` read as `.`); `None` for any other variable.
fn env_var_key(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let rest = lower.strip_prefix("casemail__")?;
    Some(rest.replace("__", "."))
}

/// Turns a TOML syntax error into one line with its position, instead of the multi-line
/// report with a source excerpt that `toml` renders.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end_matches('\n').replace('\n', "; ");
    let Some(span) = err.span() else {
        return format!("invalid TOML: {message}");
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |current| current.chars().count())
        + 1;
    format!("invalid TOML at line {line}, column {column}: {message}")
}
