//! The `wca-fuzz` command line.
//!
//! ```text
//! wca-fuzz --target xml --cases 10000000 --seed 1
//! wca-fuzz --target config --seconds 600
//! wca-fuzz --replay tests/fuzz/found/config-0123456789abcdef
//! ```
//!
//! Prints progress every five seconds and a summary line (cases, seconds,
//! cases/s, share accepted, slowest case). On a failure it writes the
//! input to `found/<target>-<fingerprint>`, prints the problem, and exits
//! with status 1; bad arguments exit with 2.

use std::path::PathBuf;
use std::time::Duration;

use crate::Target;
use crate::campaign::{self, Campaign, Limit, Report};

const USAGE: &str = "usage: wca-fuzz --target NAME [--cases N | --seconds S] [--seed N] \
[--slow-ms MS] [--corpus DIR] [--found DIR]
       wca-fuzz --replay FILE...
targets: xml crypto dict rules flow faq config";

#[derive(Debug)]
struct Args {
    target: Option<Target>,
    limit: Limit,
    seed: u64,
    slow: Duration,
    corpus: PathBuf,
    found: PathBuf,
    replay: Vec<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        target: None,
        limit: Limit::Cases(100_000),
        seed: 1,
        slow: Duration::from_secs(2),
        corpus: campaign::crate_dir().join("corpus"),
        found: campaign::crate_dir().join("found"),
        replay: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: &String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a whole number, not {v:?}"))
        };
        match flag.as_str() {
            "--target" => {
                let v = value()?;
                parsed.target =
                    Some(Target::from_name(v).ok_or_else(|| format!("no target {v:?}"))?);
            }
            "--cases" => parsed.limit = Limit::Cases(number(value()?)?),
            "--seconds" => parsed.limit = Limit::Time(Duration::from_secs(number(value()?)?)),
            "--seed" => parsed.seed = number(value()?)?,
            "--slow-ms" => parsed.slow = Duration::from_millis(number(value()?)?),
            "--corpus" => parsed.corpus = value()?.into(),
            "--found" => parsed.found = value()?.into(),
            "--replay" => {
                parsed.replay.push(value()?.into());
                parsed.replay.extend(it.by_ref().map(PathBuf::from));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.target.is_none() && parsed.replay.is_empty() {
        return Err("--target or --replay is required".to_owned());
    }
    Ok(parsed)
}

/// Runs the command line `args` (without the program name); returns the
/// exit status.
pub fn main(args: &[String]) -> i32 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("wca-fuzz: {e}");
            }
            eprintln!("{USAGE}");
            return 2;
        }
    };
    if !args.replay.is_empty() {
        return replay(&args.replay);
    }
    let Some(target) = args.target else {
        return 2;
    };
    let seeds = match campaign::load_corpus(&args.corpus, target) {
        Ok(seeds) => seeds,
        Err(e) => {
            eprintln!(
                "wca-fuzz: cannot read the {target} corpus under {}: {e}",
                args.corpus.display()
            );
            return 2;
        }
    };
    println!(
        "{target}: {} seeds, seed {}, {}",
        seeds.len(),
        args.seed,
        match args.limit {
            Limit::Cases(n) => format!("{n} cases"),
            Limit::Time(t) => format!("{} s", t.as_secs()),
        }
    );
    let campaign = Campaign {
        target,
        seeds,
        seed: args.seed,
        limit: args.limit,
        slow: args.slow,
    };
    let report = campaign.run(|r| println!("  {}", summary(r)));
    println!("{}", summary(&report));
    let Some(failure) = report.failure else {
        return 0;
    };
    println!("FAILED: {}", failure.problem);
    match campaign::save_failure(&args.found, target, &failure.input) {
        Ok(path) => println!("input written to {}", path.display()),
        Err(e) => println!(
            "cannot write the input ({e}): {:?}",
            String::from_utf8_lossy(&failure.input)
        ),
    }
    1
}

/// One line: target, cases, seconds, rate, acceptance, slowest case.
pub fn summary(r: &Report) -> String {
    format!(
        "{}: {} cases in {:.1} s ({:.0} cases/s), {:.1}% accepted, slowest {:.2} ms",
        r.target,
        r.cases,
        r.elapsed.as_secs_f64(),
        r.rate(),
        100.0 * r.accepted as f64 / (r.cases.max(1) as f64),
        r.slowest.as_secs_f64() * 1000.0,
    )
}

fn replay(paths: &[PathBuf]) -> i32 {
    let mut status = 0;
    for path in paths {
        let Some(target) = campaign::target_of(path) else {
            eprintln!("{}: the name does not start with a target", path.display());
            status = 2;
            continue;
        };
        let input = match std::fs::read(path) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                status = 2;
                continue;
            }
        };
        match campaign::run_case(target, &input) {
            Ok(outcome) => println!("{}: {outcome:?}", path.display()),
            Err(problem) => {
                println!("{}: FAILED: {problem}", path.display());
                status = 1;
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn flags_are_read_and_mistakes_named() {
        let a = args("--target xml --cases 10_000_000 --seed 7").expect("parse");
        assert_eq!(a.target, Some(Target::Xml));
        assert_eq!(a.limit, Limit::Cases(10_000_000));
        assert_eq!(a.seed, 7);
        assert!(args("--target yaml").expect_err("bad").contains("yaml"));
        assert!(
            args("--cases 5")
                .expect_err("no target")
                .contains("--target")
        );
        assert!(
            args("--target xml --cases")
                .expect_err("no value")
                .contains("--cases")
        );
    }
}
