//! Domain types: tickets, messages, events, cursors. No I/O; the store maps them to its own
//! versioned on-disk records.
