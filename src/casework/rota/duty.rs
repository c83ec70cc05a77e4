//! Who is on duty at an instant, and when someone next comes on duty.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use crate::ids::AgentId;

use super::Rota;
use super::wall_clock::{Edge, instant, leave_begins, leave_ends, occurrence};

/// Days without an exception after which [`Rota::next_shift_start`] stops walking day by day:
/// a week of weekly shifts, the day before it (whose overnight shifts reach into it) and a day
/// of margin.
const QUIET_DAYS: u32 = 9;

impl Rota {
    /// The agents on duty at `at`: inside one of their shifts or extra shifts and not on leave.
    pub(crate) fn on_duty(&self, at: Timestamp) -> BTreeSet<AgentId> {
        let today = self.timezone.to_datetime(at).date();
        // A shift is at most a day and an hour long, so one that covers `at` started today or
        // yesterday; the day before is looked at too for a fall-back change at midnight.
        let days = [
            today.yesterday().ok().and_then(|day| day.yesterday().ok()),
            today.yesterday().ok(),
            Some(today),
        ];
        let mut agents = BTreeSet::new();
        for day in days.into_iter().flatten() {
            for (agent, start, end) in self.starting_on(day) {
                if start <= at && at < end && !self.on_leave(agent, at) {
                    agents.insert(agent.clone());
                }
            }
        }
        agents
    }

    /// The first instant after `after` at which an agent comes on duty who was not on duty just
    /// before it: a shift start, or the end of a leave in the middle of a shift. `None` when the
    /// rota will never have anyone new on duty.
    pub(crate) fn next_shift_start(&self, after: Timestamp) -> Option<Timestamp> {
        let exception_days = self.exception_days();
        let returns_from_leave: Vec<Timestamp> = self
            .leave
            .iter()
            .map(|leave| instant(&self.timezone, leave_ends(leave.until), Edge::End))
            .filter(|&ends| ends > after)
            .collect();

        let first_day = self.timezone.to_datetime(after).date();
        let mut day = first_day.yesterday().unwrap_or(first_day);
        let mut quiet_days = 0;
        loop {
            if quiet_days > QUIET_DAYS {
                // Without exceptions the rota repeats every week, so a week in which nobody
                // arrived means nobody arrives until the next exception changes the pattern.
                let next_exception = exception_days.iter().copied().find(|&date| date > day)?;
                day = next_exception
                    .yesterday()
                    .unwrap_or(next_exception)
                    .max(day);
                quiet_days = 0;
            }
            let mut candidates: Vec<Timestamp> = self
                .starting_on(day)
                .map(|(_, start, _)| start)
                .chain(
                    returns_from_leave
                        .iter()
                        .copied()
                        .filter(|&ends| self.timezone.to_datetime(ends).date() == day),
                )
                .filter(|&start| start > after)
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            if let Some(found) = candidates.into_iter().find(|&at| self.someone_arrives(at)) {
                return Some(found);
            }
            if exception_days.binary_search(&day).is_ok() {
                quiet_days = 0;
            } else {
                quiet_days += 1;
            }
            day = day.tomorrow().ok()?;
        }
    }

    /// Shifts and extra shifts that start on `date`, with the instants they cover.
    fn starting_on(&self, date: Date) -> impl Iterator<Item = (&AgentId, Timestamp, Timestamp)> {
        let weekday = date.weekday();
        let weekly = self
            .shifts
            .iter()
            .filter(move |shift| shift.days.contains(&weekday))
            .filter_map(move |shift| {
                let (start, end) = occurrence(&self.timezone, date, shift.start, shift.end)?;
                Some((&shift.agent, start, end))
            });
        let extras = self
            .extras
            .iter()
            .filter(move |extra| extra.date == date)
            .filter_map(move |extra| {
                let (start, end) = occurrence(&self.timezone, date, extra.start, extra.end)?;
                Some((&extra.agent, start, end))
            });
        weekly.chain(extras)
    }

    /// The days on which a leave or an extra shift begins or ends, sorted: the only days on
    /// which the weekly pattern of who is on duty changes.
    fn exception_days(&self) -> Vec<Date> {
        let leave = self.leave.iter().flat_map(|leave| {
            [
                leave_begins(leave.from).date(),
                leave_ends(leave.until).date(),
            ]
        });
        // An extra shift may run into the next day.
        let extras = self
            .extras
            .iter()
            .flat_map(|extra| [extra.date, extra.date.tomorrow().unwrap_or(extra.date)]);
        let mut days: Vec<Date> = leave.chain(extras).collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    fn on_leave(&self, agent: &AgentId, at: Timestamp) -> bool {
        self.leave
            .iter()
            .filter(|leave| &leave.agent == agent)
            .any(|leave| {
                let begins = instant(&self.timezone, leave_begins(leave.from), Edge::Start);
                let ends = instant(&self.timezone, leave_ends(leave.until), Edge::End);
                begins <= at && at < ends
            })
    }

    /// Whether someone is on duty at `at` who was not a moment before.
    fn someone_arrives(&self, at: Timestamp) -> bool {
        let now = self.on_duty(at);
        if now.is_empty() {
            return false;
        }
        let Ok(just_before) = at.checked_sub(SignedDuration::from_nanos(1)) else {
            return true;
        };
        let before = self.on_duty(just_before);
        now.iter().any(|agent| !before.contains(agent))
    }
}
