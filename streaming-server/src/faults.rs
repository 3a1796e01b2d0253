//! The two bugs of the seed story, on a switch. Each is read exactly where the bug would be
//! (`stream::run` for the lost close, `conversations::lookup_for_stream` for the late
//! callback), so the buggy and the correct path sit side by side. Without `--inject` the
//! correct code runs.

use std::fmt;
use std::str::FromStr;

use parking_lot::Mutex;

/// One `--inject` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// `close-race[=RATE]`: the close notification of that fraction (default 1.0) of aborted
    /// streams is lost (io.js #1309, the seed's first bug). With the reaper on, the reaper
    /// must catch them; with `--no-reaper` they leak.
    CloseRace(f64),
    /// `late-callback`: the 1-to-1 lookup's completion registers its presence callback
    /// without checking that the stream already closed (the seed's second bug).
    LateCallback,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            None if s == "late-callback" => Ok(Fault::LateCallback),
            None if s == "close-race" => Ok(Fault::CloseRace(1.0)),
            Some(("close-race", rate)) => match rate.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(Fault::CloseRace(r)),
                _ => Err(format!(
                    "close-race rate must be a number in 0..=1, got {rate:?}"
                )),
            },
            _ => Err(format!(
                "unknown fault {s:?}: expected close-race[=RATE] or late-callback"
            )),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::CloseRace(r) => write!(f, "close-race={r}"),
            Fault::LateCallback => f.write_str("late-callback"),
        }
    }
}

/// The switches of one server.
pub struct Faults {
    close_race: Option<f64>,
    late_callback: bool,
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    /// The faults `injected` (none: the correct code everywhere).
    pub fn new(injected: &[Fault], seed: u64) -> Faults {
        let mut f = Faults {
            close_race: None,
            late_callback: false,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        };
        for fault in injected {
            match fault {
                Fault::CloseRace(r) => f.close_race = Some(*r),
                Fault::LateCallback => f.late_callback = true,
            }
        }
        f
    }

    /// Whether this aborted stream's close notification is lost.
    pub fn loses_close(&self) -> bool {
        self.close_race
            .is_some_and(|rate| self.rng.lock().f64() < rate)
    }

    /// Whether the 1-to-1 completion takes the seed's buggy path.
    pub fn late_callback(&self) -> bool {
        self.late_callback
    }

    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        self.close_race.is_some() || self.late_callback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_clear_errors() {
        assert_eq!("late-callback".parse::<Fault>(), Ok(Fault::LateCallback));
        assert_eq!("close-race".parse::<Fault>(), Ok(Fault::CloseRace(1.0)));
        assert_eq!("close-race=0.3".parse::<Fault>(), Ok(Fault::CloseRace(0.3)));
        assert!(
            "close-race=2"
                .parse::<Fault>()
                .unwrap_err()
                .contains("0..=1")
        );
        assert!(
            "late"
                .parse::<Fault>()
                .unwrap_err()
                .contains("unknown fault")
        );
        let none = Faults::new(&[], 1);
        assert!(!none.loses_close() && !none.late_callback() && !none.any());
        let all = Faults::new(&[Fault::CloseRace(1.0), Fault::LateCallback], 1);
        assert!(all.loses_close() && all.late_callback());
    }
}
