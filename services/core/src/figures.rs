//! Figures for `/metrics`: each service keeps its own registry and renders it here.

use prometheus_client::registry::Registry;

/// Returns `registry` as OpenMetrics text without the closing `# EOF` line, so that the
/// figures of several services can be appended into one page.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return String::new();
    }
    text.strip_suffix("# EOF\n").unwrap_or(&text).to_owned()
}
