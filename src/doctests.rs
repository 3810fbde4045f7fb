//! The Rust snippets of README.md and docs/ run as doctests: each document
//! is the doc comment of an item that exists only under `cargo test --doc`.

/// README.md
#[doc = include_str!("../README.md")]
pub struct Readme;

/// README.zh-CN.md
#[doc = include_str!("../README.zh-CN.md")]
pub struct ReadmeZhCn;

/// docs/guide/01-client-server.md
#[doc = include_str!("../docs/guide/01-client-server.md")]
pub struct Guide01ClientServer;

/// docs/guide/02-tcp-udp.md
#[doc = include_str!("../docs/guide/02-tcp-udp.md")]
pub struct Guide02TcpUdp;

/// docs/guide/03-sticky-packets.md
#[doc = include_str!("../docs/guide/03-sticky-packets.md")]
pub struct Guide03StickyPackets;

/// docs/guide/04-commands.md
#[doc = include_str!("../docs/guide/04-commands.md")]
pub struct Guide04Commands;

/// docs/guide/05-upload.md
#[doc = include_str!("../docs/guide/05-upload.md")]
pub struct Guide05Upload;

/// docs/guide/06-chat.md
#[doc = include_str!("../docs/guide/06-chat.md")]
pub struct Guide06Chat;

/// docs/guide/07-socketserver.md
#[doc = include_str!("../docs/guide/07-socketserver.md")]
pub struct Guide07Socketserver;

/// docs/guide/08-production.md
#[doc = include_str!("../docs/guide/08-production.md")]
pub struct Guide08Production;

/// docs/guide/09-event-loop.md
#[doc = include_str!("../docs/guide/09-event-loop.md")]
pub struct Guide09EventLoop;

/// docs/zh-CN/01-client-server.md
#[doc = include_str!("../docs/zh-CN/01-client-server.md")]
pub struct GuideZhCn01ClientServer;

/// docs/zh-CN/02-tcp-udp.md
#[doc = include_str!("../docs/zh-CN/02-tcp-udp.md")]
pub struct GuideZhCn02TcpUdp;

/// docs/zh-CN/03-sticky-packets.md
#[doc = include_str!("../docs/zh-CN/03-sticky-packets.md")]
pub struct GuideZhCn03StickyPackets;

/// docs/zh-CN/04-commands.md
#[doc = include_str!("../docs/zh-CN/04-commands.md")]
pub struct GuideZhCn04Commands;

/// docs/zh-CN/05-upload.md
#[doc = include_str!("../docs/zh-CN/05-upload.md")]
pub struct GuideZhCn05Upload;

/// docs/zh-CN/06-chat.md
#[doc = include_str!("../docs/zh-CN/06-chat.md")]
pub struct GuideZhCn06Chat;

/// docs/zh-CN/07-socketserver.md
#[doc = include_str!("../docs/zh-CN/07-socketserver.md")]
pub struct GuideZhCn07Socketserver;

/// docs/zh-CN/08-production.md
#[doc = include_str!("../docs/zh-CN/08-production.md")]
pub struct GuideZhCn08Production;

/// docs/zh-CN/09-event-loop.md
#[doc = include_str!("../docs/zh-CN/09-event-loop.md")]
pub struct GuideZhCn09EventLoop;

/// docs/python-mapping.md
#[doc = include_str!("../docs/python-mapping.md")]
pub struct PythonMapping;

/// docs/glossary.md
#[doc = include_str!("../docs/glossary.md")]
pub struct Glossary;

/// docs/README.md
#[doc = include_str!("../docs/README.md")]
pub struct DocsIndex;
