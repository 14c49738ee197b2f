//! The scale decisions of the `kubernetes` backend, apart from the cluster: which pods of a
//! version are ready, which of them an instance holds, how many replicas the version needs,
//! and which instances ended.
//!
//! An instance is a claim on one ready pod. A version's Deployment has as many replicas as
//! it has claims and starts in progress: a start adds a replica and claims the first ready
//! pod no instance holds; a stop gives its pod up (marked to go first) and removes a replica.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::oneshot;

/// The annotation naming the instance that holds a pod: a runner that restarts finds its
/// instances again under the ids the router knows them by.
pub const INSTANCE_ANNOTATION: &str = "nuage.dev/instance";

/// A pod ready to take requests, as the EndpointSlices of its version's Service list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyPod {
    /// The pod's name.
    pub pod: String,
    /// `ip:port` where it answers.
    pub address: String,
}

/// Returns the pods `slices` list as ready (and not terminating) on `port`, each once, in
/// name order.
pub fn ready_pods(slices: &[EndpointSlice], port: u16) -> Vec<ReadyPod> {
    let mut ready: Vec<ReadyPod> = slices
        .iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|endpoint| {
            let conditions = endpoint.conditions.as_ref();
            // An unknown readiness counts as ready, as the API says; terminating never does.
            conditions.and_then(|conditions| conditions.ready).unwrap_or(true)
                && !conditions
                    .and_then(|conditions| conditions.terminating)
                    .unwrap_or(false)
        })
        .filter_map(|endpoint| {
            let target = endpoint.target_ref.as_ref()?;
            if target.kind.as_deref() != Some("Pod") {
                return None;
            }
            let ip: IpAddr = endpoint.addresses.first()?.parse().ok()?;
            Some(ReadyPod {
                pod: target.name.clone()?,
                address: SocketAddr::new(ip, port).to_string(),
            })
        })
        .collect();
    ready.sort_by(|a, b| a.pod.cmp(&b.pod));
    ready.dedup_by(|a, b| a.pod == b.pod);
    ready
}

/// What a pod's status says of it, for [`Claims::ended`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodState {
    /// Its name.
    pub name: String,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    /// How many times its container restarted.
    pub restarts: i32,
    /// Why its container last ended, and with which status.
    pub last_end: Option<(String, i32)>,
    /// The instance that holds it, as its annotation says (kept across runner restarts).
    pub instance: Option<String>,
}

impl PodState {
    /// Returns what `pod`'s status says.
    pub fn of(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let container = status
            .and_then(|status| status.container_statuses.as_ref())
            .and_then(|statuses| statuses.first());
        let last_end = container
            .and_then(|container| container.last_state.as_ref())
            .and_then(|state| state.terminated.as_ref())
            .map(|terminated| (terminated.reason.clone().unwrap_or_default(), terminated.exit_code));
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            phase: status.and_then(|status| status.phase.clone()).unwrap_or_default(),
            restarts: container.map_or(0, |container| container.restart_count),
            last_end,
            instance: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(INSTANCE_ANNOTATION))
                .cloned(),
        }
    }
}

/// Returns what keeps `pod` from being ready, as its status says: why its container waits
/// (an image that cannot be pulled, a crash loop) with how it last ended, or why it is not
/// scheduled; `None` when it says nothing.
pub fn not_ready_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.as_ref().and_then(|statuses| statuses.first());
    let waiting = container
        .and_then(|container| container.state.as_ref())
        .and_then(|state| state.waiting.as_ref())
        .map(|waiting| {
            let reason = waiting.reason.clone().unwrap_or_else(|| "waiting".to_owned());
            match &waiting.message {
                Some(message) => format!("{reason}: {message}"),
                None => reason,
            }
        });
    let ended = container
        .and_then(|container| container.last_state.as_ref())
        .and_then(|state| state.terminated.as_ref())
        .map(|terminated| {
            let mut ended = format!("exited with status {}", terminated.exit_code);
            if let Some(reason) = &terminated.reason {
                ended.push_str(&format!(" ({reason})"));
            }
            if let Some(message) = terminated.message.as_deref().filter(|message| !message.is_empty()) {
                ended.push_str(&format!(": {message}"));
            }
            ended
        });
    let unscheduled = status
        .conditions
        .as_ref()
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|condition| condition.type_ == "PodScheduled" && condition.status == "False")
        })
        .map(|condition| format!("not scheduled: {}", condition.message.clone().unwrap_or_default()));
    match (waiting, ended) {
        (Some(waiting), Some(ended)) => Some(format!("{waiting}; it {ended}")),
        (waiting, ended) => waiting.or(ended.map(|ended| format!("it {ended}"))).or(unscheduled),
    }
}

/// One instance's hold on a pod.
#[derive(Debug)]
pub struct Claim {
    /// The instance.
    pub instance_id: String,
    /// The pod's restarts when it was claimed: one more means the instance ended.
    pub restarts: i32,
    /// Where to say why it ended, when it ends on its own.
    pub ended: oneshot::Sender<String>,
}

/// The instances of one version, and its starts in progress.
#[derive(Debug, Default)]
pub struct Claims {
    claimed: HashMap<String, Claim>,
    starting: u32,
}

impl Claims {
    /// Returns the replicas the version needs: one per instance and per start in progress.
    pub fn replicas(&self) -> i32 {
        i32::try_from(self.claimed.len() + self.starting as usize).unwrap_or(i32::MAX)
    }

    /// Counts a start in progress.
    pub fn begin(&mut self) {
        self.starting += 1;
    }

    /// Forgets a start that failed.
    pub fn abandon(&mut self) {
        self.starting = self.starting.saturating_sub(1);
    }

    /// Returns whether the version has neither instances nor starts in progress.
    pub fn is_idle(&self) -> bool {
        self.claimed.is_empty() && self.starting == 0
    }

    /// Ends a start in progress with a claim on the first of `ready` no instance holds, if
    /// any.
    pub fn claim(
        &mut self,
        ready: &[ReadyPod],
        state: impl Fn(&str) -> Option<i32>,
        instance_id: &str,
    ) -> Option<(ReadyPod, oneshot::Receiver<String>)> {
        let free = ready.iter().find(|ready| !self.claimed.contains_key(&ready.pod))?;
        let (ended, receiver) = oneshot::channel();
        self.claimed.insert(
            free.pod.clone(),
            Claim {
                instance_id: instance_id.to_owned(),
                restarts: state(&free.pod).unwrap_or(0),
                ended,
            },
        );
        self.abandon();
        Some((free.clone(), receiver))
    }

    /// Adds a claim on `pod` found running (after a restart of the runner).
    pub fn adopt(&mut self, pod: &str, instance_id: &str, restarts: i32) -> oneshot::Receiver<String> {
        let (ended, receiver) = oneshot::channel();
        let claim = Claim {
            instance_id: instance_id.to_owned(),
            restarts,
            ended,
        };
        self.claimed.insert(pod.to_owned(), claim);
        receiver
    }

    /// Gives up the claim on `pod`; returns whether there was one.
    pub fn release(&mut self, pod: &str) -> bool {
        self.claimed.remove(pod).is_some()
    }

    /// Removes and returns the claims whose pods ended, given the version's pods as they
    /// are now, each with why: gone, being deleted, no longer running, or restarted.
    pub fn ended(&mut self, pods: &[PodState]) -> Vec<(Claim, String)> {
        let by_name: HashMap<&str, &PodState> = pods.iter().map(|pod| (pod.name.as_str(), pod)).collect();
        let ended: Vec<(String, String)> = self
            .claimed
            .iter()
            .filter_map(|(name, claim)| {
                let reason = match by_name.get(name.as_str()) {
                    None => "its pod is gone".to_owned(),
                    Some(pod) if pod.deleting => "its pod is being deleted".to_owned(),
                    Some(pod) if pod.restarts > claim.restarts => match &pod.last_end {
                        Some((reason, _)) if reason == "OOMKilled" => "memory limit exceeded".to_owned(),
                        Some((reason, code)) => format!("exited with status {code} ({reason})"),
                        None => "it restarted".to_owned(),
                    },
                    Some(pod) if pod.phase == "Failed" || pod.phase == "Succeeded" => {
                        format!("its pod ended ({})", pod.phase)
                    }
                    Some(_) => return None,
                };
                Some((name.clone(), reason))
            })
            .collect();
        ended
            .into_iter()
            .filter_map(|(name, reason)| Some((self.claimed.remove(&name)?, reason)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn endpoint(pod: &str, ip: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready,
                serving: ready,
                terminating,
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                name: Some(pod.to_owned()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }
    }

    fn slice(endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".to_owned(),
            endpoints,
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn only_ready_pods_that_are_not_terminating_take_requests() {
        let slices = [
            slice(vec![
                endpoint("b", "10.0.0.2", Some(true), Some(false)),
                endpoint("starting", "10.0.0.3", Some(false), None),
                endpoint("leaving", "10.0.0.4", Some(true), Some(true)),
            ]),
            slice(vec![
                endpoint("a", "10.0.0.1", None, None),
                endpoint("b", "10.0.0.2", Some(true), None),
                endpoint("v6", "fd00::5", Some(true), None),
            ]),
        ];
        let ready = ready_pods(&slices, 8080);
        let named: Vec<(&str, &str)> = ready.iter().map(|r| (r.pod.as_str(), r.address.as_str())).collect();
        assert_eq!(
            named,
            [("a", "10.0.0.1:8080"), ("b", "10.0.0.2:8080"), ("v6", "[fd00::5]:8080")]
        );
    }

    fn ready(pods: &[&str]) -> Vec<ReadyPod> {
        pods.iter()
            .map(|pod| ReadyPod {
                pod: (*pod).to_owned(),
                address: format!("{pod}:1"),
            })
            .collect()
    }

    #[test]
    fn each_start_claims_a_pod_no_other_instance_holds_and_replicas_follow() {
        let mut claims = Claims::default();
        assert_eq!(claims.replicas(), 0);
        claims.begin();
        claims.begin();
        assert_eq!(claims.replicas(), 2, "a replica per start in progress");
        let (first, _) = claims.claim(&ready(&["a"]), |_| Some(0), "i1").unwrap();
        assert_eq!(first.pod, "a");
        assert_eq!(claims.replicas(), 2);
        // The only ready pod is held: the second start waits for another.
        assert!(claims.claim(&ready(&["a"]), |_| Some(0), "i2").is_none());
        let (second, _) = claims.claim(&ready(&["a", "b"]), |_| Some(0), "i2").unwrap();
        assert_eq!(second.pod, "b");
        assert_eq!(claims.replicas(), 2);
        assert!(claims.release("a"));
        assert!(!claims.release("a"));
        assert_eq!(claims.replicas(), 1);
        claims.begin();
        claims.abandon();
        assert_eq!(claims.replicas(), 1);
        assert!(claims.release("b"));
        assert!(claims.is_idle());
    }

    #[test]
    fn a_start_that_fails_says_what_the_pods_status_says() {
        use k8s_openapi::api::core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
        };
        let with = |status: PodStatus| Pod {
            status: Some(status),
            ..Pod::default()
        };
        let crashing = with(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".to_owned()),
                        message: Some("back-off 10s restarting failed container".to_owned()),
                    }),
                    ..ContainerState::default()
                }),
                last_state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 127,
                        reason: Some("StartError".to_owned()),
                        message: Some("exec: \"python3\": executable file not found in $PATH".to_owned()),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        assert_eq!(
            not_ready_reason(&crashing).unwrap(),
            "CrashLoopBackOff: back-off 10s restarting failed container; it exited with status 127 (StartError): \
             exec: \"python3\": executable file not found in $PATH"
        );
        let unscheduled = with(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_owned(),
                status: "False".to_owned(),
                message: Some("0/3 nodes are available: 3 Insufficient memory.".to_owned()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        assert_eq!(
            not_ready_reason(&unscheduled).unwrap(),
            "not scheduled: 0/3 nodes are available: 3 Insufficient memory."
        );
        assert_eq!(not_ready_reason(&with(PodStatus::default())), None);
    }

    #[test]
    fn instances_whose_pods_end_are_told_why() {
        let mut claims = Claims::default();
        let mut receivers = Vec::new();
        for pod in ["gone", "deleting", "oom", "crashed", "failed", "fine"] {
            claims.begin();
            receivers.push(claims.claim(&ready(&[pod]), |_| Some(1), pod).unwrap().1);
        }
        let state = |name: &str| PodState {
            name: name.to_owned(),
            phase: "Running".to_owned(),
            restarts: 1,
            ..PodState::default()
        };
        let pods = [
            PodState {
                deleting: true,
                ..state("deleting")
            },
            PodState {
                restarts: 2,
                last_end: Some(("OOMKilled".to_owned(), 137)),
                ..state("oom")
            },
            PodState {
                restarts: 2,
                last_end: Some(("Error".to_owned(), 3)),
                ..state("crashed")
            },
            PodState {
                phase: "Failed".to_owned(),
                ..state("failed")
            },
            state("fine"),
        ];
        let mut ended: Vec<(String, String)> = claims
            .ended(&pods)
            .into_iter()
            .map(|(claim, reason)| (claim.instance_id, reason))
            .collect();
        ended.sort();
        assert_eq!(
            ended,
            [
                ("crashed".to_owned(), "exited with status 3 (Error)".to_owned()),
                ("deleting".to_owned(), "its pod is being deleted".to_owned()),
                ("failed".to_owned(), "its pod ended (Failed)".to_owned()),
                ("gone".to_owned(), "its pod is gone".to_owned()),
                ("oom".to_owned(), "memory limit exceeded".to_owned()),
            ]
        );
        assert_eq!(claims.replicas(), 1);
        assert!(claims.release("fine"), "the pod that did not end is still held");
        assert!(claims.ended(&pods).is_empty(), "each end is told once");
    }
}
