//! The two messages a re-point sends, and the record values read from an answer.
//!
//! The update is one RFC 2136 message, so the server applies all of it or nothing: a
//! prerequisite that the record set still holds the value read before the change (§2.4.2,
//! "RRset exists (value dependent)"), or that it does not exist (§2.4.3) when the name
//! had no record; then the deletion of the record set (§2.5.2) and the new record
//! (§2.5.1). A late or repeated copy of the message finds the prerequisite false and
//! changes nothing.

use hickory_proto::op::{Message, OpCode, Query, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// A read-only question for `name`'s records of type `rtype`.
pub fn query(name: &Name, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), rtype));
    message
}

/// Replace the `rtype` records of `name` by `new`, if they are still exactly `previous`
/// (no record at all when `previous` is empty). An empty `new` only deletes: a rollback
/// to a name that had no record of the type.
pub fn update(zone: &Name, name: &Name, rtype: RecordType, previous: &[RData], new: &[RData], ttl: u32) -> Message {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    let mut zone_query = Query::query(zone.clone(), RecordType::SOA);
    zone_query.set_query_class(DNSClass::IN);
    message.add_zone(zone_query);
    if previous.is_empty() {
        let mut absent = Record::update0(name.clone(), 0, rtype);
        absent.dns_class = DNSClass::NONE;
        message.add_pre_requisite(absent);
    } else {
        for value in previous {
            message.add_pre_requisite(Record::from_rdata(name.clone(), 0, value.clone()));
        }
    }
    let mut delete = Record::update0(name.clone(), 0, rtype);
    delete.dns_class = DNSClass::ANY;
    message.add_update(delete);
    for value in new {
        message.add_update(Record::from_rdata(name.clone(), ttl, value.clone()));
    }
    message
}

/// The values of `name`'s `rtype` records in an answer, sorted as text.
pub fn values(answer: &Message, name: &Name, rtype: RecordType) -> Vec<RData> {
    let mut found: Vec<RData> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype && r.name == *name)
        .map(|r| r.data.clone())
        .collect();
    found.sort_by_key(ToString::to_string);
    found.dedup();
    found
}

/// Values as one line: `10.0.0.1, 10.0.0.2`, or the empty string for no record.
pub fn text(values: &[RData]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn update_carries_value_prerequisite_delete_and_add_in_one_message() {
        let old = RData::A(A::new(10, 0, 0, 1));
        let new = RData::A(A::new(10, 0, 0, 2));
        let m = update(
            &name("example.test."),
            &name("api.example.test."),
            RecordType::A,
            std::slice::from_ref(&old),
            std::slice::from_ref(&new),
            30,
        );
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        let prereq = &m.answers;
        assert_eq!(prereq.len(), 1);
        assert_eq!(
            (prereq[0].dns_class, prereq[0].ttl, &prereq[0].data),
            (DNSClass::IN, 0, &old)
        );
        let updates = &m.authorities;
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].dns_class, DNSClass::ANY);
        assert_eq!(updates[0].data, RData::Update0(RecordType::A));
        assert_eq!(
            (updates[1].dns_class, updates[1].ttl, &updates[1].data),
            (DNSClass::IN, 30, &new)
        );
        let decoded = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!((decoded.answers.len(), decoded.authorities.len()), (1, 2));
    }

    #[test]
    fn update_of_a_missing_record_requires_that_it_is_still_missing() {
        let new = RData::A(A::new(10, 0, 0, 2));
        let m = update(
            &name("example.test."),
            &name("api.example.test."),
            RecordType::A,
            &[],
            &[new],
            30,
        );
        let prereq = &m.answers[0];
        assert_eq!(prereq.dns_class, DNSClass::NONE);
        assert_eq!(prereq.data, RData::Update0(RecordType::A));
    }

    #[test]
    fn update_to_no_value_only_deletes_under_its_prerequisite() {
        let old = RData::A(A::new(10, 0, 0, 2));
        let m = update(
            &name("example.test."),
            &name("api.example.test."),
            RecordType::A,
            std::slice::from_ref(&old),
            &[],
            30,
        );
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, old);
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].dns_class, DNSClass::ANY);
        assert_eq!(m.authorities[0].data, RData::Update0(RecordType::A));
    }

    #[test]
    fn values_keep_only_the_asked_name_and_type_sorted() {
        let mut answer = Message::query();
        let api = name("api.example.test.");
        answer.add_answer(Record::from_rdata(api.clone(), 30, RData::A(A::new(10, 0, 0, 9))));
        answer.add_answer(Record::from_rdata(api.clone(), 30, RData::A(A::new(10, 0, 0, 1))));
        answer.add_answer(Record::from_rdata(
            name("other.example.test."),
            30,
            RData::A(A::new(1, 1, 1, 1)),
        ));
        assert_eq!(text(&values(&answer, &api, RecordType::A)), "10.0.0.1, 10.0.0.9");
        assert_eq!(text(&values(&answer, &api, RecordType::AAAA)), "");
    }
}
