//! The claim a load writes before its first trade, the check that follows, and the lease that
//! says while it writes (the protocol is in the module docs of [`super`]).

use std::time::Duration;

use chrono::Utc;

use super::super::Result;
use crate::model::Nanos;
use crate::store::influx::write::WriteOptions;
use crate::store::influx::{self, Claim, InfluxConfig, line_protocol};
use crate::store::{Manifest, StoreError};

/// How often a running load renews its claim.
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(15);

fn now() -> Nanos {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A load's claims: the first, its renewals and its last.
pub(super) struct Claimant {
    fingerprint: String,
    load: String,
    lease: Duration,
}

impl Claimant {
    /// The claims of the load of `manifest`. Its lease outlasts a renewal that the writer
    /// retries for as long as it retries anything: if InfluxDB refuses a renewal for longer,
    /// it refuses the load's batches too, and the load fails.
    pub(super) fn new(manifest: &Manifest, options: &WriteOptions) -> Self {
        Self {
            fingerprint: manifest.fingerprint(),
            load: manifest.describe(),
            lease: options.retry.max_time + 4 * RENEW_EVERY,
        }
    }

    /// A claim written now, so that it is within any retention (a claim dropped by the
    /// retention policy would be invisible to the other load), leased for `lease`.
    fn point(&self, lease: Duration) -> Claim {
        let time = now();
        Claim {
            fingerprint: self.fingerprint.clone(),
            load: self.load.clone(),
            time,
            lease_until: time.saturating_add(lease.as_nanos().try_into().unwrap_or(i64::MAX)),
        }
    }

    /// Extends the lease: the load is still writing.
    pub(super) fn renew(&self, write_point: impl Fn(Vec<u8>) -> Result<()>) -> Result<()> {
        write_point(line_protocol::claim_line(&self.point(self.lease)))
    }

    /// Ends the lease: the load has stopped writing, so a `--replace` may go ahead.
    pub(super) fn end(&self, write_point: impl Fn(Vec<u8>) -> Result<()>) -> Result<()> {
        write_point(line_protocol::claim_line(&self.point(Duration::ZERO)))
    }
}

/// Refuses to replace `config`'s target while a different load is writing it: its latest
/// claim's lease has not run out. A load that ended, or died long enough ago, is replaced.
pub(super) fn ensure_nobody_writes(config: &InfluxConfig, manifest: &Manifest) -> Result<()> {
    let claims = influx::claims(config)?;
    match influx::live_claims(&claims, &manifest.fingerprint(), now()).first() {
        Some(writing) => Err(StoreError::Locked {
            target: config.target(),
            holder: writing.to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Claims `config`'s target for the load of `claimant`, writing the claim with `write_point`
/// (the load's retrying writer), and fails if a different load has claimed it too. On failure
/// the claim just written is withdrawn, so that the other load, or this one tried again, is
/// not refused because of it.
pub(super) fn claim(
    config: &InfluxConfig,
    claimant: &Claimant,
    write_point: impl Fn(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let ours = claimant.point(claimant.lease);
    write_point(line_protocol::claim_line(&ours))?;
    // Our claim is acknowledged, so every read from here on sees it. Of two different loads A
    // and B, each reading after its own claim is acknowledged:
    // - A claims and reads before B claims: A sees no other claim and goes on; B's read comes
    //   after A's claim, sees it, and B backs off.
    // - Both claim, then both read: each sees the other's claim and both back off, writing no
    //   trade. Safe, and each withdraws its claim, so trying again later succeeds.
    // - Any other order is one of these two: A can miss B's claim only if B claimed after A
    //   read, which is after A claimed, so B's read sees A's claim. Two different loads
    //   therefore never both go on.
    // The shards of one load share the fingerprint, so they never back off for each other.
    let other = influx::claims(config).map(|all| {
        all.into_iter()
            .find(|claim| claim.fingerprint != ours.fingerprint)
    });
    let refusal = match other {
        Ok(None) => return Ok(()),
        Ok(Some(other)) => StoreError::Locked {
            target: config.target(),
            holder: other.to_string(),
        },
        Err(e) => e,
    };
    if let Err(e) = influx::withdraw_claim(config, &ours) {
        // The refusal is what matters; the claim left behind makes other loads back off until
        // a --replace clears it.
        tracing::warn!(
            error = %crate::telemetry::chain(&e),
            "could not withdraw this load's claim"
        );
    }
    Err(refusal.into())
}
