//! What makes a function a function: its runtime and the handler that runtime calls.

use nuage_applications::{Application, Kind};
use nuage_proto::applications::v1 as wire;
use nuage_proto::runner::v1 as runner;

/// A function as stored.
pub type Function = Application<FunctionKind>;

/// A function's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionKind {
    /// A runtime name `GET /runtimes` lists; never changes.
    pub runtime: String,
    /// What the runtime calls.
    pub handler: String,
}

impl Kind for FunctionKind {
    const NOUN: &'static str = "function";
    const TABLE: &'static str = "functions";
    const COLUMNS: &'static [&'static str] = &["runtime", "handler"];
    const CHANGEABLE: &'static [&'static str] = &["handler"];
    const RUNNER_KIND: runner::Kind = runner::Kind::Function;
    const START_FAILED: &'static str = "the new version did not start";

    fn values(&self) -> Vec<String> {
        vec![self.runtime.clone(), self.handler.clone()]
    }

    fn from_values(values: Vec<String>) -> Self {
        let mut values = values.into_iter();
        Self {
            runtime: values.next().unwrap_or_default(),
            handler: values.next().unwrap_or_default(),
        }
    }

    fn into_proto(self, message: &mut wire::Application) {
        message.runtime = self.runtime;
        message.handler = self.handler;
    }

    fn fill_spec(&self, spec: &mut runner::Spec) {
        if self.runs_in_router() {
            spec.kind = runner::Kind::Wasm.into();
        }
    }

    fn runs_in_router(&self) -> bool {
        self.runtime == crate::runtimes::WASM
    }
}
