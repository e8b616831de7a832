//! Unit tests of the codec: every command of both versions, both framings,
//! every malformation, and a random-frame test that only checks no panic.

use super::*;

fn frames(parts: &[&[u8]]) -> Vec<Frame> {
    parts.iter().map(|p| Frame::from_slice(p)).collect()
}

fn bytes(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.to_vec()).collect()
}

fn client_request(service: &[u8], body: &[&[u8]]) -> ClientCommand {
    ClientCommand {
        kind: ClientKind::Request,
        service: Frame::from_slice(service),
        body: frames(body),
    }
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
    let fin = ClientCommand {
        kind: ClientKind::Final,
        service: "echo".into(),
        body: frames(&[b"r"]),
    };
    encode_client(&mut out, Dialect::MAJORTOMO, fin).unwrap();
    let no_service_frame = vec![vec![], b"MDPC02".to_vec(), vec![4], b"r".to_vec()];
    assert_eq!(bytes(&out), no_service_frame);
    let mut out = Vec::new();
    let partial = ClientCommand {
        kind: ClientKind::Partial,
        service: "echo".into(),
        body: frames(&[b"p"]),
    };
    encode_client(&mut out, Dialect::MAJORTOMO, partial).unwrap();
    assert_eq!(out[2][..], [3]);
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
    let cases: Vec<(Vec<Frame>, WorkerCommand)> = vec![
        (
            frames(&[b"", b"MDPW01", &[1], b"svc"]),
            WorkerCommand::Ready { service: "svc".into() },
        ),
        (
            frames(&[b"", b"MDPW01", &[3], b"cli", b"", b"r"]),
            WorkerCommand::Final {
                client: "cli".into(),
                body: frames(&[b"r"]),
            },
        ),
        (frames(&[b"", b"MDPW01", &[4]]), WorkerCommand::Heartbeat),
        (frames(&[b"", b"MDPW01", &[5]]), WorkerCommand::Disconnect),
    ];
    for (input, expected) in cases {
        let (dialect, inbound) = decode_at_broker(input).unwrap();
        assert_eq!(dialect, Dialect::V01);
        assert_eq!(inbound, Inbound::Worker(expected));
    }
}

#[test]
fn decodes_every_worker_command_of_v02() {
    let cases: Vec<(Vec<Frame>, WorkerCommand)> = vec![
        (
            frames(&[b"MDPW02", &[1], b"svc"]),
            WorkerCommand::Ready { service: "svc".into() },
        ),
        (
            frames(&[b"MDPW02", &[3], b"cli", b"", b"p"]),
            WorkerCommand::Partial {
                client: "cli".into(),
                body: frames(&[b"p"]),
            },
        ),
        (
            frames(&[b"MDPW02", &[4], b"cli", b"", b"f", b"g"]),
            WorkerCommand::Final {
                client: "cli".into(),
                body: frames(&[b"f", b"g"]),
            },
        ),
        (frames(&[b"MDPW02", &[5]]), WorkerCommand::Heartbeat),
        (frames(&[b"MDPW02", &[6]]), WorkerCommand::Disconnect),
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
    assert!(matches!(v01, Inbound::Worker(WorkerCommand::Final { .. })));
    let (_, v02) = decode_at_broker(frames(&[b"MDPW02", &[3], b"c", b"", b"x"])).unwrap();
    assert!(matches!(v02, Inbound::Worker(WorkerCommand::Partial { .. })));
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
        (vec![b"", b"MDPW01", &[3], b"cli", b""], MissingBody),
        (vec![b"", b"MDPC01"], MissingService),
        (vec![b"", b"MDPC01", b""], EmptyService),
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
    let (d, cmd) = decode_at_client(frames(&[b"", b"MDPC01", b"echo", b"r"])).unwrap();
    assert_eq!((d, cmd.kind), (Dialect::V01, ClientKind::Final));
    let (_, cmd) = decode_at_client(frames(&[b"MDPC02", &[2], b"echo", b"p"])).unwrap();
    assert_eq!(cmd.kind, ClientKind::Partial);
    let (_, cmd) = decode_at_client(frames(&[b"MDPC02", &[3], b"echo", b"f"])).unwrap();
    assert_eq!(cmd.kind, ClientKind::Final);
    let err = decode_at_client(frames(&[b"MDPC02", &[1], b"echo", b"q"])).unwrap_err();
    assert_eq!(err, ProtocolError::WrongDirection("client REQUEST"));
    let err = decode_at_client(frames(&[b"MDPW02", &[5]])).unwrap_err();
    assert!(matches!(err, ProtocolError::WrongDirection(_)));
}

#[test]
fn worker_side_decoder_reads_broker_commands_and_refuses_the_rest() {
    let (_, cmd) = decode_at_worker(frames(&[b"", b"MDPW01", &[2], b"cli", b"", b"q"])).unwrap();
    assert_eq!(
        cmd,
        WorkerCommand::Request {
            client: "cli".into(),
            body: frames(&[b"q"])
        }
    );
    let (_, cmd) = decode_at_worker(frames(&[b"MDPW02", &[5]])).unwrap();
    assert_eq!(cmd, WorkerCommand::Heartbeat);
    let (_, cmd) = decode_at_worker(frames(&[b"MDPW02", &[6]])).unwrap();
    assert_eq!(cmd, WorkerCommand::Disconnect);
    let err = decode_at_worker(frames(&[b"MDPW02", &[1], b"svc"])).unwrap_err();
    assert_eq!(err, ProtocolError::WrongDirection("READY"));
    let err = decode_at_worker(frames(&[b"", b"MDPC01", b"svc", b"x"])).unwrap_err();
    assert!(matches!(err, ProtocolError::WrongDirection(_)));
}

#[test]
fn encodes_client_commands_in_each_dialect() {
    let mut out = Vec::new();
    encode_client(&mut out, Dialect::V01, client_request(b"echo", &[b"a"])).unwrap();
    assert_eq!(
        bytes(&out),
        vec![b"".to_vec(), b"MDPC01".to_vec(), b"echo".to_vec(), b"a".to_vec()]
    );

    let mut out = vec![Frame::from("id")];
    let fin = ClientCommand {
        kind: ClientKind::Final,
        service: "echo".into(),
        body: frames(&[b"r"]),
    };
    encode_client(&mut out, Dialect::V02, fin).unwrap();
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

    let partial = ClientCommand {
        kind: ClientKind::Partial,
        service: "echo".into(),
        body: frames(&[b"p"]),
    };
    let err = encode_client(&mut Vec::new(), Dialect::V01, partial).unwrap_err();
    assert_eq!(err, ProtocolError::NotInVersion("PARTIAL", Version::V01));
}

#[test]
fn encodes_worker_commands_in_each_dialect() {
    let mut out = Vec::new();
    let req = WorkerCommand::Request {
        client: "cli".into(),
        body: frames(&[b"q"]),
    };
    encode_worker(&mut out, Dialect::V01, req).unwrap();
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
    encode_worker(&mut out, Dialect::V02, WorkerCommand::Disconnect).unwrap();
    assert_eq!(bytes(&out), vec![b"MDPW02".to_vec(), vec![6]]);
    let mut out = Vec::new();
    let delimited_v02 = Dialect {
        version: Version::V02,
        framing: Framing::Delimited,
        flavor: Flavor::Rfc,
    };
    encode_worker(&mut out, delimited_v02, WorkerCommand::Heartbeat).unwrap();
    assert_eq!(bytes(&out), vec![vec![], b"MDPW02".to_vec(), vec![5]]);
    let partial = WorkerCommand::Partial {
        client: "c".into(),
        body: frames(&[b"p"]),
    };
    assert!(encode_worker(&mut Vec::new(), Dialect::V01, partial).is_err());
}

#[test]
fn every_worker_command_round_trips_in_both_versions_and_framings() {
    for version in [Version::V01, Version::V02] {
        for framing in [Framing::Delimited, Framing::Bare] {
            let dialect = Dialect {
                version,
                framing,
                flavor: Flavor::Rfc,
            };
            let mut commands = vec![
                WorkerCommand::Ready { service: "svc".into() },
                WorkerCommand::Final {
                    client: "c".into(),
                    body: frames(&[b"1", b""]),
                },
                WorkerCommand::Heartbeat,
                WorkerCommand::Disconnect,
            ];
            if version == Version::V02 {
                commands.push(WorkerCommand::Partial {
                    client: "c".into(),
                    body: frames(&[b"p"]),
                });
            }
            for cmd in commands {
                let expected = format!("{cmd:?}");
                let mut out = Vec::new();
                encode_worker(&mut out, dialect, cmd).unwrap();
                let (got_dialect, inbound) = decode_at_broker(out).unwrap();
                assert_eq!(got_dialect, dialect);
                let Inbound::Worker(got) = inbound else {
                    panic!("not a worker command")
                };
                assert_eq!(format!("{got:?}"), expected);
            }
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
        let _ = decode_at_client(frames(&parts));
        let _ = decode_at_worker(frames(&parts));
    }
}
