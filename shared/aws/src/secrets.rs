//! Secrets read once, at cold start, from SSM Parameter Store.
//!
//! A secret reaches a function in one of two ways: its value in an
//! environment variable (`WECHAT_TOKEN=...`), or the name of an SSM
//! `SecureString` parameter in the same name with `_PARAM` appended
//! (`WECHAT_TOKEN_PARAM=/wca/prod/wechat-token`). The second keeps the
//! value out of the function's configuration, where anyone allowed to
//! read the function's settings would see it; they see only a name.
//!
//! The variable wins when both are set, so a developer can override a
//! parameter without touching SSM. A parameter that cannot be read stops
//! the cold start: a function that came up without its token would only
//! fail every request later, further from the cause. Values live in
//! [`Secrets`], whose `Debug` shows names only, and errors name the
//! variable and the parameter, never a value.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wca_aws::SecretError> {
//! let config = wca_aws::sdk_config(None).await;
//! // WECHAT_TOKEN unset, WECHAT_TOKEN_PARAM=/wca/token in the environment:
//! let secrets = wca_aws::Secrets::load(&config).await?;
//! let token = secrets.get("WECHAT_TOKEN"); // the parameter's value
//! # let _ = token;
//! # Ok(()) }
//! ```

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;

/// The environment variables that hold secrets, and so may name an SSM
/// parameter instead (`NAME_PARAM`).
pub const SECRET_VARS: [&str; 5] = [
    "WECHAT_TOKEN",
    "WECHAT_AES_KEY",
    "WCA_SHOP_TOKEN",
    "WECHAT_APP_SECRET",
    // The admin API's named tokens, `alice=TOKEN,bob=TOKEN`.
    "WCA_ADMIN_TOKENS",
];

/// Appended to a secret's variable name to name its SSM parameter.
pub const PARAM_SUFFIX: &str = "_PARAM";

/// A secret that could not be had at cold start. The message names the
/// variable and the parameter, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// SSM did not give the parameter's value: it does not exist, the
    /// function may not read it or its KMS key, or SSM was unreachable.
    #[error(
        "{var}: cannot read SSM parameter {parameter:?} (named by {var}{PARAM_SUFFIX}): {reason}"
    )]
    Unreadable {
        /// The secret's environment variable, e.g. `WECHAT_TOKEN`.
        var: &'static str,
        /// The parameter's name, as `NAME_PARAM` gives it.
        parameter: String,
        /// SSM's error code and message, or what kind of failure it was.
        reason: String,
    },
}

/// The secrets read from SSM, by variable name. Only variables that were
/// unset or empty and named a parameter are here; the rest are still
/// read from the environment as before.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(var, _)| (var, "<redacted>")))
            .finish()
    }
}

impl Secrets {
    /// Reads, from the process environment and SSM through a client on
    /// `config`, every secret that names a parameter instead of holding
    /// its value.
    pub async fn load(config: &aws_config::SdkConfig) -> Result<Self, SecretError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::read(&aws_sdk_ssm::Client::new(config), &env).await
    }

    /// [`Secrets::load`] with the environment given as a lookup (tests
    /// give a table). Parameters are read with decryption, one by one:
    /// there are at most five, once per sandbox.
    pub async fn read(
        ssm: &aws_sdk_ssm::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SecretError> {
        let mut values = Vec::new();
        for (var, parameter) in wanted(env) {
            let value = read_parameter(ssm, var, &parameter).await?;
            tracing::info!(var, parameter = %parameter, "secret read from SSM");
            values.push((var, value));
        }
        Ok(Self { values })
    }

    /// The value read for `var`, if it came from SSM.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, value)| value.as_str())
    }

    /// The variables whose values came from SSM.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(name, _)| *name)
    }
}

/// Which secrets to read from which parameter: each variable of
/// [`SECRET_VARS`] that is unset or empty while its `NAME_PARAM` is set.
/// A variable set alongside its parameter is kept, with a warning, since
/// one of the two is a mistake the operator should hear about.
fn wanted(env: &dyn Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    SECRET_VARS
        .iter()
        .filter_map(|&var| {
            let param_var = format!("{var}{PARAM_SUFFIX}");
            let parameter = set(&param_var)?;
            if set(var).is_some() {
                tracing::warn!(var, "{var} is set, so {param_var} is ignored");
                return None;
            }
            Some((var, parameter.trim().to_owned()))
        })
        .collect()
}

async fn read_parameter(
    ssm: &aws_sdk_ssm::Client,
    var: &'static str,
    parameter: &str,
) -> Result<String, SecretError> {
    let unreadable = |reason: String| SecretError::Unreadable {
        var,
        parameter: parameter.to_owned(),
        reason,
    };
    let out = ssm
        .get_parameter()
        .name(parameter)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| unreadable(reason(&e)))?;
    let found = out
        .parameter()
        .ok_or_else(|| unreadable("SSM returned no parameter".into()))?;
    if found.r#type() != Some(&ParameterType::SecureString) {
        // Readable all the same; but its value is stored unencrypted and
        // shown to anyone allowed to list parameters.
        tracing::warn!(var, parameter, "the parameter is not a SecureString");
    }
    found
        .value()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| unreadable("the parameter is empty".into()))
}

/// Why a read failed, from parts that cannot hold the value: SSM's error
/// code and message, or the kind of failure. A response that could not
/// be parsed is not described further, since its body is what held the
/// value.
fn reason<R>(err: &SdkError<GetParameterError, R>) -> String {
    match err {
        SdkError::ServiceError(e) if e.err().is_parameter_not_found() => {
            "no such parameter".to_owned()
        }
        SdkError::ServiceError(e) => {
            let e = e.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => "SSM refused the request".to_owned(),
            }
        }
        SdkError::TimeoutError(_) => "SSM did not answer in time".to_owned(),
        SdkError::DispatchFailure(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_io() {
                "I/O error"
            } else {
                "could not connect"
            };
            format!("SSM unreachable ({kind})")
        }
        SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
        SdkError::ResponseError(_) => "SSM's response could not be read".to_owned(),
        _ => "unknown SDK error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn only_unset_or_empty_secrets_with_a_parameter_are_read_from_ssm() {
        let lookup = env(&[
            ("WECHAT_TOKEN", ""),
            ("WECHAT_TOKEN_PARAM", " /wca/token "),
            ("WECHAT_AES_KEY", "set-directly"),
            ("WECHAT_AES_KEY_PARAM", "/wca/aes"),
            ("WCA_SHOP_TOKEN_PARAM", ""),
            ("WECHAT_APP_SECRET_PARAM", "/wca/app-secret"),
            ("TABLE_NAME_PARAM", "/not/a/secret"),
        ]);
        assert_eq!(
            wanted(&lookup),
            [
                ("WECHAT_TOKEN", "/wca/token".to_owned()),
                ("WECHAT_APP_SECRET", "/wca/app-secret".to_owned()),
            ]
        );
        assert!(wanted(&env(&[])).is_empty());
    }

    #[test]
    fn debug_output_of_secrets_shows_names_not_values() {
        let secrets = Secrets {
            values: vec![("WECHAT_TOKEN", "sekritToken".to_owned())],
        };
        let dbg = format!("{secrets:?}");
        assert!(
            dbg.contains("WECHAT_TOKEN") && !dbg.contains("sekrit"),
            "{dbg}"
        );
        assert_eq!(secrets.get("WECHAT_TOKEN"), Some("sekritToken"));
        assert_eq!(secrets.get("WECHAT_AES_KEY"), None);
        assert_eq!(secrets.names().collect::<Vec<_>>(), ["WECHAT_TOKEN"]);
    }
}
