//! Invocation figures per application, in the Prometheus text format: invocations by status,
//! durations, cold starts, instances and queue length.

use crate::pool::Pools;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Application {
    application_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    application_id: String,
    status: u16,
}

type Durations = Family<Application, Histogram, fn() -> Histogram>;

#[derive(Debug)]
struct Inner {
    registry: Registry,
    invocations: Family<Outcome, Counter>,
    durations: Durations,
    cold_starts: Family<Application, Counter>,
    instances: Family<Application, Gauge>,
    queue: Family<Application, Gauge>,
}

/// The router's figures.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nuage_router");
        let invocations = Family::<Outcome, Counter>::default();
        let durations: Durations =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_5, 2.0, 18)));
        let cold_starts = Family::<Application, Counter>::default();
        let instances = Family::<Application, Gauge>::default();
        let queue = Family::<Application, Gauge>::default();
        registry.register(
            "invocations",
            "Invocations by application and HTTP status",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Invocation latency by application, cold starts included",
            durations.clone(),
        );
        registry.register(
            "cold_starts",
            "Requests that waited for a new instance",
            cold_starts.clone(),
        );
        registry.register("instances", "Instances running per application", instances.clone());
        registry.register("queue_length", "Requests waiting for an instance", queue.clone());
        Self(Arc::new(Inner {
            registry,
            invocations,
            durations,
            cold_starts,
            instances,
            queue,
        }))
    }
}

impl Metrics {
    /// Counts an invocation that ended with `status` after `took`.
    pub fn invoked(&self, application_id: &str, status: u16, took: Option<Duration>) {
        self.0
            .invocations
            .get_or_create(&Outcome {
                application_id: application_id.to_owned(),
                status,
            })
            .inc();
        if let Some(took) = took {
            self.0
                .durations
                .get_or_create(&Application {
                    application_id: application_id.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// Counts a request that waited for a new instance.
    pub fn cold_start(&self, application_id: &str) {
        self.0
            .cold_starts
            .get_or_create(&Application {
                application_id: application_id.to_owned(),
            })
            .inc();
    }

    /// Returns the figures as OpenMetrics text, without the closing `# EOF` line.
    pub fn render(&self, pools: &Pools) -> String {
        self.0.instances.clear();
        self.0.queue.clear();
        for (application_id, figures) in pools.figures() {
            let labels = Application { application_id };
            self.0.instances.get_or_create(&labels).set(figures.instances as i64);
            self.0.queue.get_or_create(&labels).set(figures.waiting as i64);
        }
        nuage_core::figures::render(&self.0.registry)
    }
}
