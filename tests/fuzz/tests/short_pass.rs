//! The short pass CI runs: every target over its seeds and a few thousand
//! mutants, with a fixed seed, so a failure here is reproducible with
//! `wca-fuzz --target NAME --seed 20261127 --cases N`.

use std::time::Duration;

use wca_fuzz::Target;
use wca_fuzz::campaign::{self, Campaign, Limit};

/// Runs `cases` cases of `target` and fails with the input if one breaks.
fn survives(target: Target, cases: u64) {
    let seeds = campaign::load_corpus(&campaign::crate_dir().join("corpus"), target)
        .unwrap_or_else(|e| panic!("the {target} corpus cannot be read: {e}"));
    assert!(!seeds.is_empty(), "the {target} corpus is empty");
    let report = Campaign {
        target,
        seeds,
        seed: 20_261_127,
        limit: Limit::Cases(cases),
        // Debug builds: generous, a hang still shows.
        slow: Duration::from_secs(5),
    }
    .run(|_| {});
    if let Some(failure) = report.failure {
        panic!(
            "{target} case {} failed: {}\ninput: {:?}",
            report.cases,
            failure.problem,
            String::from_utf8_lossy(&failure.input)
        );
    }
    assert_eq!(report.cases, cases);
    assert!(
        report.accepted > 0,
        "no {target} case was accepted: the seeds do not reach the parser's far side"
    );
}

#[test]
fn the_xml_parser_survives_five_thousand_mutated_messages() {
    survives(Target::Xml, 5_000);
}

#[test]
fn the_crypto_envelope_survives_five_thousand_mutated_ciphertexts_keys_and_bodies() {
    survives(Target::Crypto, 5_000);
}

#[test]
fn the_dictionary_loader_survives_five_hundred_mutated_word_lists() {
    survives(Target::Dict, 500);
}

#[test]
fn the_rules_loader_survives_two_thousand_mutated_rule_files() {
    survives(Target::Rules, 2_000);
}

#[test]
fn the_flow_loader_survives_a_thousand_mutated_dialog_files() {
    survives(Target::Flow, 1_000);
}

#[test]
fn the_faq_loader_survives_five_hundred_mutated_faq_files() {
    survives(Target::Faq, 500);
}

#[test]
fn the_config_loader_survives_a_thousand_mutated_wca_toml_files() {
    survives(Target::Config, 1_000);
}

#[test]
fn every_seed_is_accepted_as_it_stands() {
    for target in Target::ALL {
        let corpus = campaign::crate_dir().join("corpus").join(target.name());
        let mut paths: Vec<_> = std::fs::read_dir(&corpus)
            .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let input = std::fs::read(&path).expect("seed");
            assert_eq!(
                campaign::run_case(target, &input),
                Ok(wca_fuzz::Outcome::Accepted),
                "{}",
                path.display()
            );
        }
    }
}
