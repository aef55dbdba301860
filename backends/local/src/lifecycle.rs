//! The rules that end an instance, shared by the control plane (lazily, whenever the
//! API is called) and the agent (eagerly, every tick), so both pick the same instant.
//! Times are Unix milliseconds.

/// Why an instance ended (`Instance::state_reason`).
pub(crate) mod reason {
    pub const DEADLINE: &str = "deadline";
    pub const SPOT: &str = "spot-interruption";
    pub const IDLE: &str = "idle";
    /// Ended by `terminate`.
    pub const TERMINATED: &str = "terminated";
    /// The agent was stopped from outside (host shutdown, `kill`): the VM is gone.
    pub const AGENT_STOPPED: &str = "agent-stopped";
    /// The agent could not be started.
    pub const LAUNCH_FAILED: &str = "launch-failed";
    /// The row said running but its agent process was gone (killed, host rebooted):
    /// ended when it was last seen alive.
    pub const LOST: &str = "lost: no process";
    /// The launcher died between recording the row and starting its agent: ended at
    /// its creation, so it is never billed.
    pub const NEVER_STARTED: &str = "lost: never started";
}

/// The timers of one live instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timers {
    pub deadline: i64,
    pub interrupt_at: Option<i64>,
    pub keepalive_ms: Option<i64>,
    pub last_activity: i64,
    /// A setup, command or exec is running: not idle, whatever the clock says.
    pub busy: bool,
}

impl Timers {
    /// When it goes idle, if it can.
    pub fn idle_at(&self) -> Option<i64> {
        match (self.busy, self.keepalive_ms) {
            (false, Some(k)) => Some(self.last_activity.saturating_add(k)),
            _ => None,
        }
    }

    /// The earliest end that has come by `now`, with its reason. On a tie the deadline
    /// wins, then the interruption.
    pub fn due(&self, now: i64) -> Option<(i64, &'static str)> {
        [
            Some((self.deadline, reason::DEADLINE)),
            self.interrupt_at.map(|t| (t, reason::SPOT)),
            self.idle_at().map(|t| (t, reason::IDLE)),
        ]
        .into_iter()
        .flatten()
        .filter(|(t, _)| *t <= now)
        .min_by_key(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timers {
        Timers {
            deadline: 10_000,
            interrupt_at: None,
            keepalive_ms: Some(3_000),
            last_activity: 1_000,
            busy: false,
        }
    }

    #[test]
    fn earliest_due_end_wins_at_its_own_instant() {
        assert_eq!(t().due(3_999), None);
        assert_eq!(t().due(50_000), Some((4_000, reason::IDLE)));
        let busy = Timers { busy: true, ..t() };
        assert_eq!(busy.due(9_999), None);
        assert_eq!(busy.due(50_000), Some((10_000, reason::DEADLINE)));
        let spot = Timers {
            interrupt_at: Some(2_000),
            ..t()
        };
        assert_eq!(spot.due(2_000), Some((2_000, reason::SPOT)));
        let tie = Timers {
            interrupt_at: Some(10_000),
            keepalive_ms: None,
            ..t()
        };
        assert_eq!(tie.due(10_000), Some((10_000, reason::DEADLINE)));
    }
}
