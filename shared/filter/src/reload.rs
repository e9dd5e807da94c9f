//! Hot reload: swap in a new automaton when the dictionary changes, without
//! making any request wait for the build.
//!
//! [`ReloadingFilter::current`] hands out the filter in force. At most once
//! every `every`, the first caller past the deadline asks the source for
//! its version (cheap: file sizes and modification times); when it changed,
//! a background thread builds the new filter while every request keeps
//! using the old one, then swaps it in. A dictionary that fails to build is
//! logged by the caller's `on_error` and the old filter stays.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{Dictionary, Filter, FilterError, Options};

/// Where a filter's dictionary comes from.
pub trait DictionarySource: Send + Sync + 'static {
    /// A cheap fingerprint that changes when the dictionary does.
    fn version(&self) -> Result<String, FilterError>;
    /// Reads and builds the filter.
    fn load(&self) -> Result<Filter, FilterError>;
}

/// Deny and allow files on disk, after the built-in dictionary when
/// `builtin` is set, built with [`Options`].
#[derive(Debug, Clone, Default)]
pub struct DictionaryFiles {
    /// Start from [`Dictionary::builtin`].
    pub builtin: bool,
    /// Deny files, merged in order.
    pub deny: Vec<PathBuf>,
    /// Allow files.
    pub allow: Vec<PathBuf>,
    /// Matcher options.
    pub options: Options,
}

impl DictionarySource for DictionaryFiles {
    fn version(&self) -> Result<String, FilterError> {
        let mut version = if self.builtin {
            "builtin;".to_owned()
        } else {
            String::new()
        };
        for path in self.deny.iter().chain(&self.allow) {
            let meta = std::fs::metadata(path).map_err(|e| FilterError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .unwrap_or_default();
            version.push_str(&format!(
                "{}:{}:{};",
                meta.len(),
                modified.as_nanos(),
                path.display()
            ));
        }
        Ok(version)
    }

    fn load(&self) -> Result<Filter, FilterError> {
        let mut dict = if self.builtin {
            Dictionary::builtin()
        } else {
            Dictionary::new()
        };
        for path in &self.deny {
            dict.add_deny_file(path)?;
        }
        for path in &self.allow {
            dict.add_allow_file(path)?;
        }
        dict.build_with(self.options)
    }
}

type ErrorHook = Box<dyn Fn(&FilterError) + Send + Sync>;

/// The longest interval between checks: a hundred years.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct Inner {
    current: RwLock<Arc<Filter>>,
    version: Mutex<String>,
    next_check: Mutex<Instant>,
    reloading: AtomicBool,
    every: Duration,
    source: Box<dyn DictionarySource>,
    on_error: ErrorHook,
}

/// A filter that follows its dictionary source. Clones share one state.
#[derive(Clone)]
pub struct ReloadingFilter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReloadingFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingFilter")
            .field("every", &self.inner.every)
            .finish_non_exhaustive()
    }
}

impl ReloadingFilter {
    /// Loads the dictionary now (an error here is returned: a service
    /// should not start without its filter) and checks for changes at
    /// most every `every` afterwards.
    pub fn new(source: impl DictionarySource, every: Duration) -> Result<Self, FilterError> {
        // `Instant + every` panics past the clock's range; a century is
        // "never" and cannot overflow it.
        let every = every.min(NEVER);
        let version = source.version()?;
        let filter = source.load()?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: RwLock::new(Arc::new(filter)),
                version: Mutex::new(version),
                next_check: Mutex::new(Instant::now() + every),
                reloading: AtomicBool::new(false),
                every,
                source: Box::new(source),
                on_error: Box::new(|_| {}),
            }),
        })
    }

    /// Calls `hook` with each failed reload (the old filter stays in force).
    pub fn on_error(self, hook: impl Fn(&FilterError) + Send + Sync + 'static) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.on_error = Box::new(hook);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The filter in force; may start a background reload.
    pub fn current(&self) -> Arc<Filter> {
        self.maybe_reload();
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<Filter> {
        match self.inner.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn maybe_reload(&self) {
        let now = Instant::now();
        {
            let Ok(mut next) = self.inner.next_check.try_lock() else {
                return;
            };
            if now < *next {
                return;
            }
            *next = now + self.inner.every;
        }
        if self.inner.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        std::thread::spawn(move || {
            reload(&inner);
            inner.reloading.store(false, Ordering::Release);
        });
    }

    /// Checks the source now and swaps in a new filter if it changed,
    /// on the calling thread. Returns whether it swapped.
    pub fn reload_now(&self) -> Result<bool, FilterError> {
        try_reload(&self.inner)
    }
}

fn reload(inner: &Inner) {
    if let Err(e) = try_reload(inner) {
        (inner.on_error)(&e);
    }
}

fn try_reload(inner: &Inner) -> Result<bool, FilterError> {
    let version = inner.source.version()?;
    let unchanged = inner.version.lock().map(|v| *v == version).unwrap_or(false);
    if unchanged {
        return Ok(false);
    }
    let filter = Arc::new(inner.source.load()?);
    match inner.current.write() {
        Ok(mut guard) => *guard = filter,
        Err(poisoned) => *poisoned.into_inner() = filter,
    }
    if let Ok(mut v) = inner.version.lock() {
        *v = version;
    }
    Ok(true)
}

impl wca_core::OutboundScreen for ReloadingFilter {
    fn screen(&self, text: &str) -> Option<wca_core::outbound::Screened> {
        self.current().screen(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, deny: &str) -> DictionaryFiles {
        let path = dir.join("deny.tsv");
        std::fs::write(&path, deny).expect("write");
        DictionaryFiles {
            builtin: false,
            deny: vec![path],
            allow: Vec::new(),
            options: Options::default(),
        }
    }

    /// Found by `wca-fuzz --target config` (`tests/fuzz/found/config-*`):
    /// `[filter] reload_secs = 9223372036854775807` panicked with
    /// "overflow when adding duration to instant".
    #[test]
    fn a_reload_interval_past_the_clocks_range_means_never() {
        let dir = tempfile::tempdir().expect("tempdir");
        let filter = ReloadingFilter::new(files(dir.path(), "赌博\tgambling\n"), Duration::MAX)
            .expect("load");
        assert!(!filter.current().check("赌博").hits.is_empty());
        assert_eq!(filter.inner.every, NEVER);
    }

    #[test]
    fn a_changed_dictionary_is_swapped_in_by_a_background_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = files(dir.path(), "赌博\tgambling\n");
        let path = source.deny[0].clone();
        let filter = ReloadingFilter::new(source, Duration::ZERO).expect("load");
        assert!(filter.current().check("刷单返利").hits.is_empty());

        std::fs::write(&path, "赌博\tgambling\n刷单返利\tfraud\n").expect("rewrite");
        // The reload runs on another thread; requests meanwhile get the old
        // filter. Poll (bounded) until the new one is in force.
        let deadline = Instant::now() + Duration::from_secs(10);
        while filter.current().check("刷单返利").hits.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the new dictionary never took effect"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(filter.current().check("赌博").hits.len(), 1);
    }

    #[test]
    fn a_broken_dictionary_keeps_the_old_filter_and_reports_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = files(dir.path(), "赌博\tgambling\n");
        let path = source.deny[0].clone();
        let filter = ReloadingFilter::new(source, Duration::from_secs(3600)).expect("load");
        std::fs::write(&path, "赌博 gambling without a tab\n").expect("rewrite");
        let err = filter.reload_now().expect_err("bad line");
        assert!(matches!(err, FilterError::Line { line: 1, .. }), "{err}");
        assert_eq!(filter.current().check("赌博").hits.len(), 1);
    }

    #[test]
    fn an_unchanged_dictionary_is_not_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let filter = ReloadingFilter::new(files(dir.path(), "赌博\tgambling\n"), Duration::ZERO)
            .expect("load");
        assert!(!filter.reload_now().expect("check"));
    }
}
