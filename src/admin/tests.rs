use super::*;

fn new(id: &str, emails: &[&str]) -> NewAgent {
    NewAgent {
        id: id.to_owned(),
        name: "Amina K.".to_owned(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        role: Role::Agent,
        max_open: Some(4),
    }
}

#[test]
fn agents_are_validated_and_addresses_are_unique() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now = Timestamp::UNIX_EPOCH;
    let help = "help@charity.example";
    let amina = add_agent(
        &store,
        help,
        new(
            "amina",
            &["Amina@Volunteers.Example", "amina.k@gmail.example"],
        ),
        now,
    )
    .expect("add amina");
    assert_eq!(
        amina.emails,
        ["amina@volunteers.example", "amina.k@gmail.example"]
    );

    let taken = add_agent(
        &store,
        help,
        new("jonas", &["AMINA@volunteers.example"]),
        now,
    );
    assert!(
        matches!(taken, Err(Error::AddressTaken { .. })),
        "{taken:?}"
    );
    let twice = add_agent(
        &store,
        help,
        new("amina", &["other@volunteers.example"]),
        now,
    );
    assert!(matches!(twice, Err(Error::AgentExists(_))), "{twice:?}");
    let bad_id = add_agent(&store, help, new("Amina K", &["x@volunteers.example"]), now);
    assert!(matches!(bad_id, Err(Error::InvalidId(_))), "{bad_id:?}");
    let bad_address = add_agent(&store, help, new("jonas", &["not an address"]), now);
    assert!(
        matches!(bad_address, Err(Error::InvalidAddress { .. })),
        "{bad_address:?}"
    );
    let helpdesk = add_agent(&store, help, new("jonas", &["HELP@charity.example"]), now);
    assert!(
        matches!(helpdesk, Err(Error::HelpdeskAddress(_))),
        "{helpdesk:?}"
    );
    assert_eq!(store.agents().expect("agents").len(), 1);
}

#[test]
fn away_with_an_end_date_ends_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().expect("time");
    let until: Timestamp = "2026-11-25T00:00:00Z".parse().expect("time");
    add_agent(
        &store,
        "help@x.example",
        new("amina", &["a@volunteers.example"]),
        now,
    )
    .expect("add");
    let id = AgentId("amina".to_owned());
    set_away(&store, &id, Some(until), now).expect("away");
    let agent = store.agent(&id).expect("read").expect("agent");
    assert!(is_away(&agent, now));
    assert!(!is_away(&agent, until));
    let back = set_back(&store, &id).expect("back");
    assert!(!is_away(&back, now));
    assert!(matches!(
        set_back(&store, &AgentId("nobody".to_owned())),
        Err(Error::UnknownAgent(_))
    ));
}
