//! Prometheus text metrics: counters and histograms, and the loopback HTTP endpoint.

/// The `[metrics]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {}
