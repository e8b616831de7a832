//! Unit tests of the codec: every command of both versions, both framings,
//! every malformation, and a random-frame test that only checks no panic.

use super::*;

fn frames(parts: &[&[u8]]) -> Vec<Frame> {
    parts.iter().map(|p| Frame::from_slice(p)).collect()
}

fn bytes(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.to_vec()).collect()
}

fn client_request(service: &[u8], body: &[&[u8]]) -> ClientRequest {
    ClientRequest {
        service: Frame::from_slice(service),
        body: frames(body),
    }
}

fn reply(kind: ReplyKind, body: &[&[u8]]) -> ClientReply {
    ClientReply {
        kind,
        service: "echo".into(),
        body: frames(body),
    }
}

fn streaming(dialect: Dialect) -> Streaming {
    dialect.streaming().unwrap()
}

#[test]
fn decodes_v01_client_request_with_leading_empty_frame() {
    let (dialect, inbound) = decode_at_broker(frames(&[b"", b"MDPC01", b"echo", b"a", b"b"])).unwrap();
    assert_eq!(dialect, Dialect::V01);
    assert_eq!(inbound, Inbound::Client(client_request(b"echo", &[b"a", b"b"])));
}

#[test]
fn decodes_v02_client_request_bare_and_delimited() {
    let (dialect, inbound) = decode_at_broker(frames(&[b"MDPC02", &[1], b"echo", b"x"])).unwrap();
    assert_eq!(dialect, Dialect::V02);
    assert_eq!(inbound, Inbound::Client(client_request(b"echo", &[b"x"])));
    let (dialect, _) = decode_at_broker(frames(&[b"", b"MDPC02", &[1], b"echo", b"x"])).unwrap();
    assert_eq!(
        dialect,
        Dialect {
            version: Version::V02,
            framing: Framing::Delimited,
            flavor: Flavor::Rfc,
        }
    );
}

#[test]
fn majortomo_client_flavor_is_recognised_by_its_request_byte() {
    let (dialect, inbound) = decode_at_broker(frames(&[b"", b"MDPC02", &[2], b"echo", b"x"])).unwrap();
    assert_eq!(dialect, Dialect::MAJORTOMO);
    assert_eq!(inbound, Inbound::Client(client_request(b"echo", &[b"x"])));
    let mut out = Vec::new();
    encode_reply(&mut out, Dialect::MAJORTOMO, reply(ReplyKind::Final, &[b"r"]));
    let no_service_frame = vec![vec![], b"MDPC02".to_vec(), vec![4], b"r".to_vec()];
    assert_eq!(bytes(&out), no_service_frame);
    let mut out = Vec::new();
    let partial = ReplyKind::Partial(streaming(Dialect::MAJORTOMO));
    encode_reply(&mut out, Dialect::MAJORTOMO, reply(partial, &[b"p"]));
    assert_eq!(out[2][..], [3]);
    // A majortomo client reads both back, with no service name.
    let (_, got) = decode_at_client(out, Flavor::Majortomo).unwrap();
    assert_eq!((got.kind, got.service.is_empty()), (partial, true));
    let mut request = Vec::new();
    encode_request(&mut request, Dialect::MAJORTOMO, client_request(b"echo", &[b"x"]));
    assert_eq!(
        bytes(&request),
        vec![vec![], b"MDPC02".to_vec(), vec![2], b"echo".to_vec(), b"x".to_vec()]
    );
}

#[test]
fn decodes_v01_client_without_leading_frame_as_bare() {
    let (dialect, _) = decode_at_broker(frames(&[b"MDPC01", b"echo", b"x"])).unwrap();
    assert_eq!(
        dialect,
        Dialect {
            version: Version::V01,
            framing: Framing::Bare,
            flavor: Flavor::Rfc,
        }
    );
}

#[test]
fn decodes_every_worker_command_of_v01() {
    let cases: Vec<(Vec<Frame>, FromWorker)> = vec![
        (
            frames(&[b"", b"MDPW01", &[1], b"svc"]),
            FromWorker::Ready { service: "svc".into() },
        ),
        (
            frames(&[b"", b"MDPW01", &[3], b"cli", b"", b"r"]),
            FromWorker::Final {
                client: "cli".into(),
                body: frames(&[b"r"]),
            },
        ),
        (frames(&[b"", b"MDPW01", &[4]]), FromWorker::Heartbeat),
        (frames(&[b"", b"MDPW01", &[5]]), FromWorker::Disconnect),
    ];
    for (input, expected) in cases {
        let (dialect, inbound) = decode_at_broker(input).unwrap();
        assert_eq!(dialect, Dialect::V01);
        assert_eq!(inbound, Inbound::Worker(expected));
    }
}

#[test]
fn decodes_every_worker_command_of_v02() {
    let cases: Vec<(Vec<Frame>, FromWorker)> = vec![
        (
            frames(&[b"MDPW02", &[1], b"svc"]),
            FromWorker::Ready { service: "svc".into() },
        ),
        (
            frames(&[b"MDPW02", &[3], b"cli", b"", b"p"]),
            FromWorker::Partial {
                streaming: streaming(Dialect::V02),
                client: "cli".into(),
                body: frames(&[b"p"]),
            },
        ),
        (
            frames(&[b"MDPW02", &[4], b"cli", b"", b"f", b"g"]),
            FromWorker::Final {
                client: "cli".into(),
                body: frames(&[b"f", b"g"]),
            },
        ),
        (frames(&[b"MDPW02", &[5]]), FromWorker::Heartbeat),
        (frames(&[b"MDPW02", &[6]]), FromWorker::Disconnect),
    ];
    for (input, expected) in cases {
        let (dialect, inbound) = decode_at_broker(input).unwrap();
        assert_eq!(dialect, Dialect::V02);
        assert_eq!(inbound, Inbound::Worker(expected));
    }
}

#[test]
fn byte_0x03_is_reply_in_v01_and_partial_in_v02() {
    let (_, v01) = decode_at_broker(frames(&[b"", b"MDPW01", &[3], b"c", b"", b"x"])).unwrap();
    assert!(matches!(v01, Inbound::Worker(FromWorker::Final { .. })));
    let (_, v02) = decode_at_broker(frames(&[b"MDPW02", &[3], b"c", b"", b"x"])).unwrap();
    assert!(matches!(v02, Inbound::Worker(FromWorker::Partial { .. })));
}

#[test]
fn rejects_every_kind_of_malformation() {
    use ProtocolError::*;
    let cases: Vec<(Vec<&[u8]>, ProtocolError)> = vec![
        (vec![], NoFrames),
        (vec![b""], MissingHeader),
        (vec![b"MDPX01", b"svc", b"x"], UnknownHeader(b"MDPX01".to_vec())),
        (vec![b"", b"", b"MDPC01"], UnknownHeader(vec![])),
        (vec![b"", b"MDPW01"], MissingCommand),
        (vec![b"", b"MDPW01", b"\x01\x01", b"svc"], MalformedCommand(2)),
        (vec![b"", b"MDPW01", b"", b"svc"], MalformedCommand(0)),
        (
            vec![b"", b"MDPW01", &[6]],
            UnknownCommand {
                version: Version::V01,
                byte: 6,
            },
        ),
        (
            vec![b"MDPW02", &[7]],
            UnknownCommand {
                version: Version::V02,
                byte: 7,
            },
        ),
        (
            vec![b"MDPW02", &[0]],
            UnknownCommand {
                version: Version::V02,
                byte: 0,
            },
        ),
        (
            vec![b"MDPC02", &[4], b"svc", b"x"],
            UnknownCommand {
                version: Version::V02,
                byte: 4,
            },
        ),
        (vec![b"MDPC02"], MissingCommand),
        (vec![b"", b"MDPW01", &[1]], MissingService),
        (vec![b"", b"MDPW01", &[1], b""], EmptyService),
        (vec![b"", b"MDPW01", &[1], b"svc", b"extra"], TrailingFrames(1)),
        (vec![b"", b"MDPW01", &[4], b"x", b"y"], TrailingFrames(2)),
        (vec![b"MDPW02", &[6], b"x"], TrailingFrames(1)),
        (vec![b"", b"MDPW01", &[3]], MissingClientAddress),
        (vec![b"", b"MDPW01", &[3], b""], EmptyClientAddress),
        (vec![b"", b"MDPW01", &[3], b"cli"], MissingDelimiter),
        (vec![b"", b"MDPW01", &[3], b"cli", b"notempty", b"x"], MissingDelimiter),
        (vec![b"", b"MDPC01"], MissingService),
        (vec![b"", b"MDPC01", b""], EmptyService),
        (
            vec![b"", b"MDPC01", &[b'x'; MAX_SERVICE_NAME + 1], b"body"],
            ServiceTooLong(MAX_SERVICE_NAME + 1),
        ),
        (vec![b"", b"MDPW01", &[1], &[b'x'; 10 << 20]], ServiceTooLong(10 << 20)),
        (vec![b"", b"MDPC01", b"svc"], MissingBody),
        (vec![b"MDPC02", &[1], b"svc"], MissingBody),
        (
            vec![b"MDPC02", &[3], b"svc", b"x"],
            WrongDirection("client FINAL/REPLY"),
        ),
        (vec![b"MDPW02", &[2], b"c", b"", b"x"], WrongDirection("worker REQUEST")),
    ];
    for (input, expected) in cases {
        let got = decode_at_broker(frames(&input));
        assert_eq!(got.err(), Some(expected.clone()), "input {input:?}");
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn client_side_decoder_reads_replies_and_refuses_requests() {
    let rfc = Flavor::Rfc;
    let (d, cmd) = decode_at_client(frames(&[b"", b"MDPC01", b"echo", b"r"]), rfc).unwrap();
    assert_eq!((d, cmd.kind), (Dialect::V01, ReplyKind::Final));
    let (_, cmd) = decode_at_client(frames(&[b"MDPC02", &[2], b"echo", b"p"]), rfc).unwrap();
    assert_eq!(cmd.kind, ReplyKind::Partial(streaming(Dialect::V02)));
    let (_, cmd) = decode_at_client(frames(&[b"MDPC02", &[3], b"echo", b"f"]), rfc).unwrap();
    assert_eq!(cmd.kind, ReplyKind::Final);
    let err = decode_at_client(frames(&[b"MDPC02", &[1], b"echo", b"q"]), rfc).unwrap_err();
    assert_eq!(err, ProtocolError::WrongDirection("client REQUEST"));
    let err = decode_at_client(frames(&[b"MDPW02", &[5]]), rfc).unwrap_err();
    assert!(matches!(err, ProtocolError::WrongDirection(_)));
}

#[test]
fn worker_side_decoder_reads_broker_commands_and_refuses_the_rest() {
    let (_, cmd) = decode_at_worker(frames(&[b"", b"MDPW01", &[2], b"cli", b"", b"q"])).unwrap();
    assert_eq!(
        cmd,
        ToWorker::Request {
            client: "cli".into(),
            body: frames(&[b"q"])
        }
    );
    let (_, cmd) = decode_at_worker(frames(&[b"MDPW02", &[5]])).unwrap();
    assert_eq!(cmd, ToWorker::Heartbeat);
    let (_, cmd) = decode_at_worker(frames(&[b"MDPW02", &[6]])).unwrap();
    assert_eq!(cmd, ToWorker::Disconnect);
    let err = decode_at_worker(frames(&[b"MDPW02", &[1], b"svc"])).unwrap_err();
    assert_eq!(err, ProtocolError::WrongDirection("READY"));
    let err = decode_at_worker(frames(&[b"", b"MDPC01", b"svc", b"x"])).unwrap_err();
    assert!(matches!(err, ProtocolError::WrongDirection(_)));
}

#[test]
fn encodes_client_commands_in_each_dialect() {
    let mut out = Vec::new();
    encode_request(&mut out, Dialect::V01, client_request(b"echo", &[b"a"]));
    assert_eq!(
        bytes(&out),
        vec![b"".to_vec(), b"MDPC01".to_vec(), b"echo".to_vec(), b"a".to_vec()]
    );

    let mut out = vec![Frame::from("id")];
    encode_reply(&mut out, Dialect::V02, reply(ReplyKind::Final, &[b"r"]));
    assert_eq!(
        bytes(&out),
        vec![
            b"id".to_vec(),
            b"MDPC02".to_vec(),
            vec![3],
            b"echo".to_vec(),
            b"r".to_vec()
        ]
    );

    // PARTIAL needs the proof that only an MDP/0.2 dialect gives.
    assert_eq!(Dialect::V01.streaming(), None);
    let mut out = Vec::new();
    let partial = ReplyKind::Partial(streaming(Dialect::V02));
    encode_reply(&mut out, Dialect::V02, reply(partial, &[b"p"]));
    assert_eq!(bytes(&out)[..2], [b"MDPC02".to_vec(), vec![2]]);
}

#[test]
fn encodes_worker_commands_in_each_dialect() {
    let mut out = Vec::new();
    let req = ToWorker::Request {
        client: "cli".into(),
        body: frames(&[b"q"]),
    };
    encode_to_worker(&mut out, Dialect::V01, req);
    assert_eq!(
        bytes(&out),
        vec![
            b"".to_vec(),
            b"MDPW01".to_vec(),
            vec![2],
            b"cli".to_vec(),
            vec![],
            b"q".to_vec()
        ]
    );
    let mut out = Vec::new();
    encode_to_worker(&mut out, Dialect::V02, ToWorker::Disconnect);
    assert_eq!(bytes(&out), vec![b"MDPW02".to_vec(), vec![6]]);
    let mut out = Vec::new();
    let delimited_v02 = Dialect {
        version: Version::V02,
        framing: Framing::Delimited,
        flavor: Flavor::Rfc,
    };
    encode_to_worker(&mut out, delimited_v02, ToWorker::Heartbeat);
    assert_eq!(bytes(&out), vec![vec![], b"MDPW02".to_vec(), vec![5]]);
    let mut out = Vec::new();
    encode_from_worker(&mut out, delimited_v02, FromWorker::Heartbeat);
    assert_eq!(bytes(&out), vec![vec![], b"MDPW02".to_vec(), vec![5]]);
}

#[test]
fn every_command_round_trips_in_both_versions_and_framings() {
    for version in [Version::V01, Version::V02] {
        for framing in [Framing::Delimited, Framing::Bare] {
            let dialect = Dialect {
                version,
                framing,
                flavor: Flavor::Rfc,
            };
            let mut commands = vec![
                FromWorker::Ready { service: "svc".into() },
                FromWorker::Final {
                    client: "c".into(),
                    body: frames(&[b"1", b""]),
                },
                FromWorker::Heartbeat,
                FromWorker::Disconnect,
            ];
            if let Some(streaming) = dialect.streaming() {
                commands.push(FromWorker::Partial {
                    streaming,
                    client: "c".into(),
                    body: frames(&[b"p"]),
                });
            }
            for cmd in commands {
                let expected = format!("{cmd:?}");
                let mut out = Vec::new();
                encode_from_worker(&mut out, dialect, cmd);
                let (got_dialect, inbound) = decode_at_broker(out).unwrap();
                assert_eq!(got_dialect, dialect);
                let Inbound::Worker(got) = inbound else {
                    panic!("not a worker command")
                };
                assert_eq!(format!("{got:?}"), expected);
            }
            for cmd in [
                ToWorker::Request {
                    client: "c".into(),
                    body: frames(&[b"q"]),
                },
                ToWorker::Heartbeat,
                ToWorker::Disconnect,
            ] {
                let expected = format!("{cmd:?}");
                let mut out = Vec::new();
                encode_to_worker(&mut out, dialect, cmd);
                let (got_dialect, got) = decode_at_worker(out).unwrap();
                assert_eq!((got_dialect, format!("{got:?}")), (dialect, expected));
            }
            let mut out = Vec::new();
            encode_request(&mut out, dialect, client_request(b"svc", &[b"x"]));
            let (got_dialect, inbound) = decode_at_broker(out).unwrap();
            assert_eq!(got_dialect.version, version);
            assert_eq!(inbound, Inbound::Client(client_request(b"svc", &[b"x"])));
        }
    }
}

#[test]
fn mmi_namespace_rule() {
    assert!(is_mmi(b"mmi.service"));
    assert!(is_mmi(b"mmi."));
    assert!(!is_mmi(b"mmi"));
    assert!(!is_mmi(b"echo.mmi."));
    assert!(!is_mmi(b"MMI.service"));
}

#[test]
fn random_frames_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 10] = [
        b"",
        b"MDPC01",
        b"MDPC02",
        b"MDPW01",
        b"MDPW02",
        &[1],
        &[3],
        &[6],
        b"svc",
        b"xyz",
    ];
    for _ in 0..20_000 {
        let n = (next() % 7) as usize;
        let parts: Vec<&[u8]> = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let _ = decode_at_broker(frames(&parts));
        let _ = decode_at_client(frames(&parts), Flavor::Rfc);
        let _ = decode_at_client(frames(&parts), Flavor::Majortomo);
        let _ = decode_at_worker(frames(&parts));
    }
}

#[test]
fn empty_reply_bodies_are_bodies_and_a_request_needs_one() {
    // The field input: a REPLY/FINAL with no body frame (zguide's Python
    // worker, majortomo's send_reply_final(client, [])).
    let (_, v01) = decode_at_broker(frames(&[b"", b"MDPW01", &[3], b"cli", b""])).unwrap();
    let empty_final = FromWorker::Final {
        client: "cli".into(),
        body: vec![],
    };
    assert_eq!(v01, Inbound::Worker(empty_final));
    let (_, v02) = decode_at_broker(frames(&[b"", b"MDPW02", &[4], b"cli", b""])).unwrap();
    assert!(matches!(v02, Inbound::Worker(FromWorker::Final { body, .. }) if body.is_empty()));
    let (_, partial) = decode_at_broker(frames(&[b"MDPW02", &[3], b"cli", b""])).unwrap();
    assert!(matches!(partial, Inbound::Worker(FromWorker::Partial { body, .. }) if body.is_empty()));
    // A client REQUEST without a body is refused (both specs require one,
    // and majortomo's worker fails on a REQUEST without one).
    for request in [
        frames(&[b"", b"MDPC01", b"svc"]),
        frames(&[b"MDPC02", &[1], b"svc"]),
        frames(&[b"", b"MDPC02", &[2], b"svc"]),
    ] {
        assert_eq!(decode_at_broker(request), Err(ProtocolError::MissingBody));
    }
    let (_, reply) = decode_at_client(frames(&[b"MDPC02", &[3], b"svc"]), Flavor::Rfc).unwrap();
    assert!(reply.body.is_empty());
    let (_, request) = decode_at_worker(frames(&[b"MDPW02", &[2], b"cli", b""])).unwrap();
    assert!(matches!(request, ToWorker::Request { body, .. } if body.is_empty()));
}
