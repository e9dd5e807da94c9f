//! CloudWatch metrics in the embedded metric format (EMF): one JSON line
//! on stdout per invocation or per batch, which Lambda's log pipeline
//! turns into metrics. No API call, no extra latency, no extra IAM
//! permission, and the numbers sit in the same log stream as the lines
//! that explain them.
//!
//! Every line has one dimension, `Function` (a short fixed name such as
//! `webhook`, not the generated function name, which changes when the
//! stack replaces the function), in the namespace from
//! `WCA_METRICS_NAMESPACE` (`wca` when unset).
//!
//! ```
//! use wca_aws::metrics::{Emf, Metric, Metrics};
//!
//! let emf = Emf::new("wca", "analytics");
//! let mut batch = Metrics::default();
//! batch.add(Metric::Messages, 3.0);
//! batch.add(Metric::Replies, 2.0);
//! let line = emf.line(&batch, 1_700_000_000_000);
//! let json: serde_json::Value = serde_json::from_str(&line).unwrap();
//! assert_eq!(json["Messages"], 3.0);
//! assert_eq!(json["_aws"]["CloudWatchMetrics"][0]["Namespace"], "wca");
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

/// The variable naming the metrics' CloudWatch namespace.
pub const NAMESPACE_VAR: &str = "WCA_METRICS_NAMESPACE";

/// The namespace when [`NAMESPACE_VAR`] is unset or empty.
pub const DEFAULT_NAMESPACE: &str = "wca";

/// The metrics the functions report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Messages and events received from users (first deliveries only).
    Messages,
    /// Replies sent.
    Replies,
    /// Conversations handed to human agents.
    Handoffs,
    /// Texts that held dictionary words (one per text, not per word).
    ComplianceHits,
    /// How long one invocation took, in milliseconds.
    LatencyMs,
    /// Calls refused because a circuit breaker was open.
    BreakerOpen,
}

impl Metric {
    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Messages => "Messages",
            Metric::Replies => "Replies",
            Metric::Handoffs => "Handoffs",
            Metric::ComplianceHits => "ComplianceHits",
            Metric::LatencyMs => "LatencyMs",
            Metric::BreakerOpen => "BreakerOpen",
        }
    }

    /// The metric's CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyMs => "Milliseconds",
            _ => "Count",
        }
    }
}

/// The values of one invocation or batch. Only metrics that were added
/// (zero included) are reported: a zero says "none happened", an absent
/// metric says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    values: BTreeMap<Metric, f64>,
}

impl Metrics {
    /// Adds `value` to the metric (a first add sets it).
    pub fn add(&mut self, metric: Metric, value: f64) {
        *self.values.entry(metric).or_insert(0.0) += value;
    }

    /// Adds the milliseconds since `started` to [`Metric::LatencyMs`].
    pub fn add_latency(&mut self, started: std::time::Instant) {
        self.add(Metric::LatencyMs, started.elapsed().as_secs_f64() * 1000.0);
    }

    /// The metric's value, if it was added.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.values.get(&metric).copied()
    }

    /// True when nothing was added: there is no line to write.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Writes [`Metrics`] as EMF lines for one function.
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    function: String,
}

impl Emf {
    /// Lines in `namespace` with the dimension `Function` = `function`.
    pub fn new(namespace: impl Into<String>, function: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            function: function.into(),
        }
    }

    /// The namespace from [`NAMESPACE_VAR`] ([`DEFAULT_NAMESPACE`] when
    /// unset or empty).
    pub fn from_env(function: impl Into<String>) -> Self {
        let namespace = std::env::var(NAMESPACE_VAR)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Self::new(namespace, function)
    }

    /// One EMF line (without the newline) for `metrics` at
    /// `timestamp_ms` (Unix milliseconds).
    pub fn line(&self, metrics: &Metrics, timestamp_ms: u64) -> String {
        let directive: Vec<Value> = metrics
            .values
            .keys()
            .map(|m| json!({"Name": m.name(), "Unit": m.unit()}))
            .collect();
        let mut root = serde_json::Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": directive,
                }],
            }),
        );
        root.insert("Function".into(), Value::from(self.function.as_str()));
        for (metric, value) in &metrics.values {
            root.insert(metric.name().into(), Value::from(*value));
        }
        Value::Object(root).to_string()
    }

    /// Writes the line for `metrics`, stamped now, to stdout in one write
    /// (so it never interleaves with a log line); nothing when `metrics`
    /// is empty. A failed write is dropped: metrics never fail a request.
    pub fn emit(&self, metrics: &Metrics) {
        if metrics.is_empty() {
            return;
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut line = self.line(metrics, now_ms);
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Metric; 6] = [
        Metric::Messages,
        Metric::Replies,
        Metric::Handoffs,
        Metric::ComplianceHits,
        Metric::LatencyMs,
        Metric::BreakerOpen,
    ];

    fn parse(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(line).expect("EMF line is JSON")
    }

    #[test]
    fn the_directive_names_every_metric_present_as_a_key() {
        let mut m = Metrics::default();
        for (i, metric) in ALL.into_iter().enumerate() {
            m.add(metric, i as f64);
        }
        let json = parse(&Emf::new("wca-test", "webhook").line(&m, 1_700_000_000_123));
        let aws = &json["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_123_u64);
        let directives = aws["CloudWatchMetrics"].as_array().expect("array");
        assert_eq!(directives.len(), 1);
        let d = &directives[0];
        assert_eq!(d["Namespace"], "wca-test");
        assert_eq!(d["Dimensions"], json!([["Function"]]));
        assert_eq!(json["Function"], "webhook", "every dimension is a key");
        let named = d["Metrics"].as_array().expect("metrics");
        assert_eq!(named.len(), ALL.len());
        for entry in named {
            let name = entry["Name"].as_str().expect("name");
            assert!(json[name].is_number(), "{name} is not a key of the line");
        }
        for (i, metric) in ALL.into_iter().enumerate() {
            assert_eq!(json[metric.name()], i as f64);
            assert!(named.contains(&json!({"Name": metric.name(), "Unit": metric.unit()})));
        }
    }

    #[test]
    fn latency_is_in_milliseconds_and_the_rest_are_counts() {
        for metric in ALL {
            let expected = if metric == Metric::LatencyMs {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(metric.unit(), expected, "{metric:?}");
        }
    }

    #[test]
    fn only_metrics_that_were_added_are_reported_and_adds_accumulate() {
        let mut m = Metrics::default();
        assert!(m.is_empty());
        m.add(Metric::Replies, 1.0);
        m.add(Metric::Replies, 2.0);
        m.add(Metric::Handoffs, 0.0);
        assert_eq!(m.get(Metric::Replies), Some(3.0));
        assert_eq!(m.get(Metric::Messages), None);
        let json = parse(&Emf::new("wca", "analytics").line(&m, 0));
        let names: Vec<&str> = json["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|e| e["Name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["Replies", "Handoffs"]);
        assert_eq!(json["Handoffs"], 0.0, "a zero is reported");
        assert!(json.get("Messages").is_none());
    }
}
