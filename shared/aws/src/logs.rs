//! Logging as a Lambda function wants it.
//!
//! Lambda's advanced logging controls set `AWS_LAMBDA_LOG_FORMAT`
//! (`Text` or `JSON`) and, when the function's log level is configured,
//! `AWS_LAMBDA_LOG_LEVEL`. With JSON, each line is one JSON object with
//! `timestamp` and `level` (which Lambda needs to filter by level), the
//! event's fields flattened beside `message`, and the runtime's span
//! holding `requestId`, so every line can be traced to its invocation.
//! With text, lines carry no time (CloudWatch adds it) and no colours.
//!
//! The level filter is, first found: `AWS_LAMBDA_LOG_LEVEL`, `WCA_LOG`
//! (the same `tracing` directives `wca serve` takes), `RUST_LOG`, `info`.

use tracing_subscriber::EnvFilter;

/// The runtime's per-invocation span (it carries `requestId`) is kept at
/// any level, so a warning still says which invocation it belongs to.
const REQUEST_SPAN: &str = "lambda_runtime::layers::trace=info";

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init_tracing() {
    let var = |name: &str| std::env::var(name).ok();
    let directives = filter_directives(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("WCA_LOG").as_deref(),
        var("RUST_LOG").as_deref(),
    );
    // A directive that does not parse falls back to `info` rather than
    // stopping the cold start over a log setting.
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    if is_json(var("AWS_LAMBDA_LOG_FORMAT").as_deref()) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.without_time().init();
    }
}

/// True when Lambda asks for JSON lines.
pub(crate) fn is_json(format: Option<&str>) -> bool {
    format.is_some_and(|f| f.trim().eq_ignore_ascii_case("json"))
}

/// The filter directives from the three variables, first set wins.
/// Lambda's level names are mapped onto `tracing`'s (`FATAL` is `error`).
pub(crate) fn filter_directives(
    lambda_level: Option<&str>,
    wca_log: Option<&str>,
    rust_log: Option<&str>,
) -> String {
    fn set(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let base = match set(lambda_level) {
        Some(level) => match level.to_ascii_lowercase().as_str() {
            "fatal" => "error".to_owned(),
            other => other.to_owned(),
        },
        None => set(wca_log).or(set(rust_log)).unwrap_or("info").to_owned(),
    };
    format!("{base},{REQUEST_SPAN}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_level_comes_from_lambda_then_wca_log_then_rust_log_then_info() {
        let base = |l, w, r| {
            let d = filter_directives(l, w, r);
            d.strip_suffix(&format!(",{REQUEST_SPAN}"))
                .expect("the request span is always kept")
                .to_owned()
        };
        assert_eq!(base(Some("WARN"), Some("debug"), Some("trace")), "warn");
        assert_eq!(base(Some("FATAL"), None, None), "error");
        assert_eq!(
            base(None, Some("wca=debug,info"), Some("trace")),
            "wca=debug,info"
        );
        assert_eq!(base(Some(" "), Some(""), Some("trace")), "trace");
        assert_eq!(base(None, None, None), "info");
    }

    #[test]
    fn every_filter_the_variables_can_give_parses() {
        for (l, w) in [
            (Some("TRACE"), None),
            (Some("DEBUG"), None),
            (Some("INFO"), None),
            (Some("WARN"), None),
            (Some("ERROR"), None),
            (Some("FATAL"), None),
            (None, Some("wca_webhook=debug,warn")),
        ] {
            let d = filter_directives(l, w, None);
            assert!(EnvFilter::try_new(&d).is_ok(), "{d}");
        }
    }

    #[test]
    fn json_lines_only_when_lambda_asks_for_them() {
        assert!(is_json(Some("JSON")) && is_json(Some("json")));
        assert!(!is_json(Some("Text")) && !is_json(None) && !is_json(Some("")));
    }
}
