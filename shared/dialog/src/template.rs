//! Reply templates with personal variables: `{name}`, `{vip}`,
//! `{vip_level}`, `{tags}` and `{last_order}`, filled from the customer's
//! profile, and, in a greeting for a returning customer only,
//! `{last_question}` from their history. Templates are checked when the
//! configuration loads, so an operator's typo (`{nmae}`) is an error at
//! start-up, not a reply that shows braces to a customer.

use wca_core::Profile;

/// The variables a template may use.
pub const VARIABLES: [&str; 5] = ["name", "vip", "vip_level", "tags", "last_order"];

/// The variable only a returning customer's greeting may use: the last
/// question of theirs the bot answered from the FAQ.
pub const LAST_QUESTION: &str = "last_question";

/// What fills a template.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    /// The customer's profile, when the shop has one.
    pub profile: Option<&'a Profile>,
    /// How `{name}` reads without a profile.
    pub anonymous: &'a str,
    /// The customer's last answered question, for `{last_question}`.
    pub last_question: Option<&'a str>,
}

/// The names of the membership levels 0 to 3 (the demo shop's
/// `member-levels` FAQ entry).
pub const VIP_NAMES: [&str; 4] = ["普通", "银卡", "金卡", "黑金"];

/// Checks that every `{...}` in `template` names a known variable.
pub fn check(template: &str) -> Result<(), String> {
    check_with(template, &[])
}

/// Checks a returning customer's greeting: [`VARIABLES`] and
/// `{last_question}`.
pub fn check_returning(template: &str) -> Result<(), String> {
    check_with(template, &[LAST_QUESTION])
}

fn check_with(template: &str, extra: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has a `{` without a closing `}`".to_owned());
        };
        let name = &after[..close];
        if !VARIABLES.contains(&name) && !extra.contains(&name) {
            let known: Vec<&str> = VARIABLES.iter().chain(extra).copied().collect();
            return Err(format!(
                "uses {{{name}}}, which is not one of {{{}}}",
                known.join("}, {")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Fills `template` for a customer. Without a profile, `{name}` becomes
/// `vars.anonymous` and the other variables become empty.
pub fn render(template: &str, vars: Vars<'_>) -> String {
    let Vars {
        profile,
        anonymous,
        last_question,
    } = vars;
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            // An unclosed brace is text.
            out.push('{');
            rest = after;
            break;
        };
        let name = &after[..close];
        match (name, profile) {
            ("name", Some(p)) => out.push_str(&p.name),
            ("name", None) => out.push_str(anonymous),
            ("vip", Some(p)) => out.push_str(VIP_NAMES[usize::from(p.vip_level.min(3))]),
            ("vip_level", Some(p)) => out.push_str(&format!("V{}", p.vip_level)),
            ("tags", Some(p)) => out.push_str(&p.tags.join("、")),
            ("last_order", Some(p)) => out.push_str(p.last_order_id.as_deref().unwrap_or("")),
            (LAST_QUESTION, _) => out.push_str(last_question.unwrap_or("")),
            (known, None) if VARIABLES.contains(&known) => {}
            // Not a variable: kept as it was written.
            _ => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wca_core::OpenId;

    fn profile() -> Profile {
        Profile {
            openid: OpenId::parse("o_demo_user01").expect("openid"),
            name: "陈静".into(),
            vip_level: 3,
            tags: vec!["VIP".into(), "复购".into()],
            last_order_id: Some("2026112000958".into()),
        }
    }

    fn vars(profile: Option<&Profile>) -> Vars<'_> {
        Vars {
            profile,
            anonymous: "亲",
            last_question: None,
        }
    }

    #[test]
    fn the_last_question_is_filled_only_where_it_is_allowed_and_known() {
        let p = profile();
        let known = Vars {
            last_question: Some("运费怎么算"),
            ..vars(Some(&p))
        };
        assert_eq!(
            render("{name}，上次您问到「{last_question}」", known),
            "陈静，上次您问到「运费怎么算」"
        );
        assert!(check_returning("上次您问到「{last_question}」").is_ok());
        let refused = check("上次您问到「{last_question}」").expect_err("not in other replies");
        assert!(refused.contains("{last_question}"), "{refused}");
    }

    #[test]
    fn variables_are_filled_from_the_profile() {
        let p = profile();
        let text = render(
            "{name}您好，{vip}会员（{vip_level}，{tags}），最近订单{last_order}",
            vars(Some(&p)),
        );
        assert_eq!(
            text,
            "陈静您好，黑金会员（V3，VIP、复购），最近订单2026112000958"
        );
    }

    #[test]
    fn without_a_profile_the_name_is_the_anonymous_form() {
        assert_eq!(render("{name}您好{vip}", vars(None)), "亲您好");
    }

    #[test]
    fn braces_that_are_not_variables_are_rendered_as_written() {
        let p = profile();
        assert_eq!(render("a{b", vars(Some(&p))), "a{b");
        assert_eq!(render("{x}与{name}", vars(Some(&p))), "{x}与陈静");
        assert_eq!(render("}{", vars(None)), "}{");
    }

    #[test]
    fn unknown_variables_and_unclosed_braces_are_refused() {
        assert!(check("{name}好").is_ok());
        assert!(check("{nmae}好").expect_err("typo").contains("{nmae}"));
        assert!(check("你好{name").is_err());
    }
}
