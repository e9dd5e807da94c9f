//! Running cases: one under [`std::panic::catch_unwind`], or many from a
//! seed corpus until a case count or a time limit, stopping at the first
//! failure with the input that caused it.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::mutate::Mutator;
use crate::rng::Rng;
use crate::{Checked, Outcome, Target};

thread_local! {
    /// Set while a case runs: its panic is recorded, not printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panics of cases to [`PANIC`] and leaves every other panic (a
/// failing test's) to the hook that was there before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one case of `target`: its outcome, or what went wrong (a broken
/// property, or `panicked at file:line: message`).
pub fn run_case(target: Target, input: &[u8]) -> Checked {
    install_panic_hook();
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| target.check(input)));
    CAPTURING.with(|c| c.set(false));
    result.unwrap_or_else(|_| {
        Err(PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panicked".to_owned()))
    })
}

/// When a campaign stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this many cases.
    Cases(u64),
    /// After this long.
    Time(Duration),
}

/// A case that broke a property, panicked or ran too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The input, as the target got it.
    pub input: Vec<u8>,
    /// What went wrong.
    pub problem: String,
}

/// What a campaign did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: Target,
    /// Cases run, the failing one included.
    pub cases: u64,
    /// Cases the entry point accepted (the rest it refused, with a message).
    pub accepted: u64,
    /// Wall time of the whole campaign.
    pub elapsed: Duration,
    /// The slowest case.
    pub slowest: Duration,
    /// The first failure; `None` when every case held.
    pub failure: Option<Failure>,
}

impl Report {
    /// Cases per second of wall time.
    pub fn rate(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A run of one target over mutants of its seed corpus.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The target.
    pub target: Target,
    /// The seed inputs (see [`load_corpus`]).
    pub seeds: Vec<Vec<u8>>,
    /// Seed of the random stream: the same seed gives the same cases.
    pub seed: u64,
    /// When to stop.
    pub limit: Limit,
    /// A case slower than this is a failure (a hang in the making).
    pub slow: Duration,
}

impl Campaign {
    /// Runs the campaign; `progress` is called about every five seconds
    /// with the report so far.
    pub fn run(&self, mut progress: impl FnMut(&Report)) -> Report {
        let mut rng = Rng::new(self.seed);
        let mut mutator = Mutator::new(self.seeds.clone(), self.target.tokens());
        let started = Instant::now();
        let mut report = Report {
            target: self.target,
            cases: 0,
            accepted: 0,
            elapsed: Duration::ZERO,
            slowest: Duration::ZERO,
            failure: None,
        };
        let mut next_progress = Duration::from_secs(5);
        // The seeds themselves first, then mutants.
        let mut seeds = self.seeds.iter();
        loop {
            report.elapsed = started.elapsed();
            let done = match self.limit {
                Limit::Cases(n) => report.cases >= n,
                Limit::Time(t) => report.elapsed >= t,
            };
            if done {
                break;
            }
            if report.elapsed >= next_progress {
                progress(&report);
                next_progress += Duration::from_secs(5);
            }
            let input = match seeds.next() {
                Some(seed) => seed.clone(),
                None => mutator.next(&mut rng),
            };
            let case_started = Instant::now();
            let result = run_case(self.target, &input);
            let took = case_started.elapsed();
            report.cases += 1;
            report.slowest = report.slowest.max(took);
            let problem = match result {
                Ok(Outcome::Accepted) => {
                    report.accepted += 1;
                    mutator.keep(&input, &mut rng);
                    None
                }
                Ok(Outcome::Refused) => None,
                Err(problem) => Some(problem),
            };
            let problem = problem.or_else(|| {
                (took > self.slow).then(|| format!("one case took {} ms", took.as_millis()))
            });
            if let Some(problem) = problem {
                report.failure = Some(Failure { input, problem });
                report.elapsed = started.elapsed();
                break;
            }
        }
        report
    }
}

/// The seed corpus of `target` under `corpus` (`corpus/<target>/*`),
/// sorted by file name so a seed means the same campaign everywhere.
pub fn load_corpus(corpus: &Path, target: Target) -> std::io::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus.join(target.name()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.is_file());
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}

/// FNV-1a: a stable 64-bit name for an input.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes a failing input to `found/<target>-<fingerprint>` and returns
/// the path.
pub fn save_failure(found: &Path, target: Target, input: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(found)?;
    let path = found.join(format!("{}-{:016x}", target.name(), fingerprint(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// The target a file of `found/` belongs to, by its name's prefix.
pub fn target_of(path: &Path) -> Option<Target> {
    let name = path.file_name()?.to_str()?;
    let (prefix, _) = name.split_once('-')?;
    Target::from_name(prefix)
}

/// The folder of this crate (`tests/fuzz`), where `corpus/` and `found/`
/// live.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_file_is_named_after_its_target() {
        let path = Path::new("found/config-00ff00ff00ff00ff");
        assert_eq!(target_of(path), Some(Target::Config));
        assert_eq!(target_of(Path::new("found/README")), None);
    }
}
