//! Config problems as a user should read them: serde's messages turned into
//! the field's path, mudrock's own wording and a did-you-mean hint. The one
//! place that knows serde's wording.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Operator;

/// A config problem found while parsing a node's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path below `config` (`predicate`, `columns[0].dtype`); empty for the
    /// config itself.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// `did you mean "x"?` for the closest candidate, if one is close enough:
/// a typo (Jaro-Winkler similarity) or an abbreviation either way (`qty`
/// for `quantity`, `integer64` for `int64`: every letter, in order,
/// starting alike).
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let given_lower = given.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let cl = c.to_lowercase();
            let mut score = strsim::jaro_winkler(&given_lower, &cl);
            let abbreviates =
                is_subsequence(&given_lower, &cl) || is_subsequence(&cl, &given_lower);
            let same_start = cl.chars().next() == given_lower.chars().next();
            if given_lower.chars().count() >= 2
                && cl.chars().count() >= 2
                && same_start
                && abbreviates
            {
                score = score.max(0.85);
            }
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        // Among close candidates prefer the fewest edits: "integer64" is
        // nearer "int64" than "int16" though both start alike.
        .max_by(|a, b| {
            let rank = |(score, c): &(f64, &str)| {
                score + strsim::normalized_damerau_levenshtein(&given_lower, &c.to_lowercase())
            };
            rank(a).total_cmp(&rank(b))
        })
        .map(|(_, c)| format!("did you mean \"{c}\"?"))
}

fn is_subsequence(short: &str, long: &str) -> bool {
    let mut it = long.chars();
    short.chars().all(|c| it.any(|l| l == c))
}

pub(crate) fn parse_config<C: Operator + DeserializeOwned + 'static>(
    config: &Value,
    operator: &'static str,
) -> Result<Box<dyn Operator>, ConfigError> {
    match serde_path_to_error::deserialize::<_, C>(config) {
        Ok(c) => Ok(Box::new(c)),
        Err(e) => Err(describe_serde_error(operator, e)),
    }
}

/// What serde reported about a config, read from its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerdeProblem {
    UnknownField { name: String, expected: Vec<String> },
    MissingField(String),
    UnknownVariant { name: String, expected: Vec<String> },
    Other(String),
}

/// Reads serde's message: the one place that knows its wording. The
/// expected names are the ones serde lists (struct fields, enum variants).
pub fn read_serde_message(msg: &str) -> SerdeProblem {
    // serde_json appends " at line x column y", meaningless for a Value.
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let quoted = |rest: &str| -> (String, Vec<String>) {
        let name = rest.split('`').next().unwrap_or("").to_string();
        let expected = rest
            .split('`')
            .skip(1)
            .filter(|s| !s.is_empty() && !s.contains(' ') && !s.starts_with(','))
            .map(str::to_string)
            .collect();
        (name, expected)
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = quoted(rest);
        return SerdeProblem::UnknownField { name, expected };
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        return SerdeProblem::MissingField(quoted(rest).0);
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (name, expected) = quoted(rest);
        return SerdeProblem::UnknownVariant { name, expected };
    }
    SerdeProblem::Other(msg.replace('`', "\""))
}

/// Turns serde's message into one that names the field and suggests a fix.
fn describe_serde_error(
    operator: &str,
    e: serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    let mut path = e.path().to_string();
    if path == "." {
        path.clear();
    }
    let below = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match read_serde_message(&e.inner().to_string()) {
        SerdeProblem::UnknownField { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str)).or_else(|| {
                (!expected.is_empty()).then(|| format!("expected one of: {}", expected.join(", ")))
            });
            // serde_path_to_error already includes the unknown key in some versions.
            let field = below(&name).replace(&format!(".{name}.{name}"), &format!(".{name}"));
            let field = if field == format!("{name}.{name}") {
                name.clone()
            } else {
                field
            };
            ConfigError {
                field,
                message: format!("unknown field \"{name}\" for operator \"{operator}\""),
                hint,
            }
        }
        SerdeProblem::MissingField(name) => ConfigError {
            field: below(&name),
            message: format!("missing field \"{name}\" for operator \"{operator}\""),
            hint: None,
        },
        SerdeProblem::UnknownVariant { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("expected one of: {}", expected.join(", "))));
            ConfigError {
                field: path,
                message: format!("unknown value \"{name}\""),
                hint,
            }
        }
        SerdeProblem::Other(message) => ConfigError {
            field: path,
            message,
            hint: None,
        },
    }
}
