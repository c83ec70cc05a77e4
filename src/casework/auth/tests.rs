use super::*;
use crate::mail::parse::{ParseLimits, parse};

fn mail(headers: &str) -> InboundMail {
    let raw = format!(
        "{headers}\r\nTo: help@charity.example\r\nSubject: Re: [#1] Housing\r\nMessage-ID: <a@b.example>\r\n\r\nHello.\r\n"
    );
    parse(raw.as_bytes(), &ParseLimits::default())
}

fn trusting(ids: &[&str]) -> Auth {
    Auth {
        trusted_authserv_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        ..Auth::default()
    }
}

const FROM: &str = "From: Amina <amina@volunteers.example>";

#[test]
fn without_results_a_single_from_is_unverified() {
    let verdict = verdict(&mail(FROM), &trusting(&["mx.charity.example"]));
    assert_eq!(verdict, Verdict::Unverified);
    let strict = Auth {
        without_results: WithoutResults::Fail,
        ..trusting(&["mx.charity.example"])
    };
    assert!(super::verdict(&mail(FROM), &strict).is_fail());
}

#[test]
fn from_is_required_single_and_never_replaced_by_sender() {
    let settings = trusting(&[]);
    let no_from = mail("Sender: amina@volunteers.example");
    assert_eq!(
        verdict(&no_from, &settings),
        Verdict::Fail("the message has no usable From address".to_owned())
    );
    let two_fields = mail(&format!("{FROM}\r\nFrom: mallory@evil.example"));
    assert_eq!(
        verdict(&two_fields, &settings),
        Verdict::Fail("the message has several From fields".to_owned())
    );
    let two_addresses = mail("From: amina@volunteers.example, mallory@evil.example");
    assert_eq!(
        verdict(&two_addresses, &settings),
        Verdict::Fail("the From field holds several addresses".to_owned())
    );
}

#[test]
fn dmarc_fail_from_a_trusted_server_fails() {
    let message = mail(&format!(
        "Authentication-Results: mx.charity.example; spf=pass smtp.mailfrom=evil.example; dmarc=fail (p=none) header.from=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&message, &trusting(&["MX.charity.example"])),
        Verdict::Fail("the receiving server recorded dmarc=fail for volunteers.example".to_owned())
    );
}

#[test]
fn results_from_an_untrusted_authserv_id_are_ignored() {
    let forged_pass = mail(&format!(
        "Authentication-Results: mx.evil.example; dmarc=pass header.from=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&forged_pass, &trusting(&["mx.charity.example"])),
        Verdict::Unverified
    );
    let other_fail = mail(&format!(
        "Authentication-Results: relay.elsewhere.example; dmarc=fail header.from=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&other_fail, &trusting(&["mx.charity.example"])),
        Verdict::Unverified
    );
    // Nothing is trusted until an id is configured.
    assert_eq!(verdict(&other_fail, &trusting(&[])), Verdict::Unverified);
    // An id that only starts like the trusted one is another id.
    let longer = mail(&format!(
        "Authentication-Results: mx.charity.example.evil.example; dmarc=pass header.from=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&longer, &trusting(&["mx.charity.example"])),
        Verdict::Unverified
    );
}

#[test]
fn aligned_passes_pass_and_spf_fail_without_dkim_fails() {
    let settings = trusting(&["mx.charity.example"]);
    let dmarc = mail(&format!(
        "Authentication-Results: mx.charity.example 1; dmarc = pass (p=reject) header.from=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&dmarc, &settings),
        Verdict::Pass("dmarc=pass".to_owned())
    );
    let dkim = mail(&format!(
        "Authentication-Results: mx.charity.example; dkim=pass header.d=mail.volunteers.example; spf=fail smtp.mailfrom=amina@volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&dkim, &settings),
        Verdict::Pass("dkim=pass".to_owned())
    );
    let unaligned_dkim = mail(&format!(
        "Authentication-Results: mx.charity.example; dkim=pass header.d=evil.example; spf=fail smtp.mailfrom=amina@volunteers.example\r\n{FROM}"
    ));
    assert!(verdict(&unaligned_dkim, &settings).is_fail());
    // A DMARC failure about another domain (a mailing list's) is not about this From.
    let other_domain = mail(&format!(
        "Authentication-Results: mx.charity.example; dmarc=fail header.from=list.example; spf=pass smtp.mailfrom=volunteers.example\r\n{FROM}"
    ));
    assert_eq!(
        verdict(&other_domain, &settings),
        Verdict::Pass("spf=pass".to_owned())
    );
}

#[test]
fn comments_cannot_smuggle_results() {
    let settings = trusting(&["mx.charity.example"]);
    let message = mail(&format!(
        "Authentication-Results: mx.charity.example; dmarc=fail (dmarc=pass; \"x\" (nested) header.from=volunteers.example) header.from=volunteers.example\r\n{FROM}"
    ));
    assert!(verdict(&message, &settings).is_fail());
}
