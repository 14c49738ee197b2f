//! Address ranges, `address/prefix`: the cluster's own ranges an operator names
//! (`runner.kubernetes.cluster_cidrs`), checked with the configuration and written into the
//! network policies of the Kubernetes backend.

use std::net::IpAddr;

/// An address range, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix`; says what is wrong when it does not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| "is not a range: `address/prefix` expected".to_owned())?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("has no valid address (`{address}`)"))?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|prefix| *prefix <= most)
            .ok_or_else(|| format!("has no valid prefix length (0 to {most})"))?;
        Ok(Self { address, prefix })
    }

    /// Returns whether it is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(Cidr::parse("10.1.0.0/16").unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(Cidr::parse("fd00::/8").unwrap().to_string(), "fd00::/8");
        for (text, why) in [
            ("10.1.0.0", "is not a range"),
            ("10.1.0/16", "has no valid address"),
            ("10.1.0.0/33", "has no valid prefix length (0 to 32)"),
            ("fd00::/129", "(0 to 128)"),
        ] {
            let error = Cidr::parse(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
