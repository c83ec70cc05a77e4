//! The team's commands: `rota import`, `rota show` and `agent list`/`agent show`.

use std::io::Write;

use anyhow::Context as _;

use crate::casework::report;
use crate::config::Config;
use crate::ids::AgentId;
use crate::store::Store;

pub(super) fn rota_import(
    store: &Store,
    config: &Config,
    file: &str,
    text: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let parsed = crate::casework::rota::parse(text, &config.rota.timezone)
        .with_context(|| format!("rota file {file} is not valid"))?;
    let registered: std::collections::BTreeSet<AgentId> =
        store.agents()?.into_iter().map(|a| a.id).collect();
    let unknown: Vec<String> = parsed
        .agents()
        .into_iter()
        .filter(|a| !registered.contains(a))
        .map(|a| a.0)
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "rota file {file} names agents that are not registered: {} (add them with `casemail agent add`)",
            unknown.join(", ")
        );
    }
    store.write(|tx| tx.set_rota(&parsed.to_toml()))?;
    store.flush()?;
    writeln!(
        out,
        "rota imported: {} shift(s), {} leave, {} extra shift(s), time zone {}",
        parsed.shifts().len(),
        parsed.leave().len(),
        parsed.extras().len(),
        parsed.timezone_name()
    )?;
    Ok(())
}

pub(super) fn rota_show(
    store: &Store,
    config: &Config,
    at: Option<&str>,
    json: bool,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let text = store
        .rota()?
        .context("no rota has been imported yet (casemail rota import FILE)")?;
    let parsed = crate::casework::rota::parse(&text, &config.rota.timezone)
        .context("the stored rota is not valid")?;
    let at = match at {
        None => now,
        Some(text) => parse_at(text, parsed.timezone())?,
    };
    let on_duty: Vec<String> = parsed.on_duty(at).into_iter().map(|a| a.0).collect();
    let next = parsed.next_shift_start(at);
    let local = at.to_zoned(parsed.timezone().clone());
    if json {
        let value = serde_json::json!({
            "at": at.to_string(),
            "local": local.to_string(),
            "timezone": parsed.timezone_name(),
            "on_duty": on_duty,
            "next_shift_start": next.map(|t| t.to_string()),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            out,
            "at {} ({})",
            local.strftime("%a %Y-%m-%d %H:%M %Z"),
            parsed.timezone_name()
        )?;
        if on_duty.is_empty() {
            writeln!(out, "nobody is on duty")?;
        } else {
            writeln!(out, "on duty: {}", on_duty.join(", "))?;
        }
        if let Some(next) = next {
            let next = next.to_zoned(parsed.timezone().clone());
            writeln!(
                out,
                "next shift starts {}",
                next.strftime("%a %Y-%m-%d %H:%M %Z")
            )?;
        }
    }
    Ok(())
}

/// Reads `--at`: an RFC 3339 time, or a civil date-time in the rota's time zone.
pub(super) fn parse_at(text: &str, zone: &jiff::tz::TimeZone) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp);
    }
    let civil: jiff::civil::DateTime = text.parse().with_context(|| {
        format!("--at {text:?} is neither an RFC 3339 time nor a local time like 2026-12-24T18:00")
    })?;
    Ok(civil
        .to_zoned(zone.clone())
        .with_context(|| format!("--at {text:?} does not exist in the rota's time zone"))?
        .timestamp())
}

pub(super) fn agent_list(
    store: &Store,
    config: &Config,
    json: bool,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let agents = report::agents(store, now)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&agents)?)?;
    } else {
        write!(
            out,
            "{}",
            report::agents_text(&agents, &config.rota.timezone)
        )?;
    }
    Ok(())
}

pub(super) fn agent_show(
    store: &Store,
    config: &Config,
    id: &str,
    json: bool,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let agents = report::agents(store, now)?;
    let agent = agents
        .iter()
        .find(|a| a["id"] == id)
        .with_context(|| format!("no agent {id}"))?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(agent)?)?;
    } else {
        write!(
            out,
            "{}",
            report::agents_text(std::slice::from_ref(agent), &config.rota.timezone)
        )?;
    }
    Ok(())
}
