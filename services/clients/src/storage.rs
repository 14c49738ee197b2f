//! The object store client: functions sign archive URLs with it, the builder fetches archives.

use nuage_core::storage::{StorageAccess, StorageConfig};

/// Returns an S3 client for `access`, as `config` describes (region, path style, deadline).
/// Checksums are only computed where S3 requires them: presigning would otherwise sign one of
/// an empty body.
pub fn client(config: &StorageConfig, access: &StorageAccess) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::timeout::TimeoutConfig;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
    let deadline = std::time::Duration::from_millis(config.timeout_ms.max(1));
    let credentials = Credentials::new(
        access.access_key.clone(),
        access.secret_key.expose().to_owned(),
        None,
        None,
        "nuage",
    );
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .endpoint_url(access.endpoint.trim_end_matches('/'))
        .credentials_provider(credentials)
        .force_path_style(config.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(deadline / 5)
                .operation_timeout(deadline)
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
