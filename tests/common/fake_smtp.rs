//! A small SMTP server on tokio whose behaviour a test switches at run time:
//! silent after the connection, silent after the message, 451, 550, AUTH
//! without STARTTLS. It speaks just enough SMTP for lettre, and records the
//! command lines it received and the messages it accepted.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    net::TcpListener,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts every mail.
    Accept,
    /// Closes each connection at once: a server that is down.
    CloseAtOnce,
    /// Accepts the connection, then never says a word.
    SilentAfterConnect,
    /// Takes the whole message, then never answers the final dot.
    SilentAfterData,
    /// 451 to MAIL FROM: try again later.
    TryLater,
    /// 550 to RCPT TO: relaying denied.
    Refuse,
}

struct State {
    behaviour: Behaviour,
    /// How long the server takes to accept each message.
    delay: Duration,
    offer_auth: bool,
    connections: usize,
    lines: Vec<String>,
    delivered: Vec<String>,
}

#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeSmtp {
    pub async fn start(behaviour: Behaviour) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, behaviour)
    }

    /// On a port chosen earlier (a server that comes back after an outage).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> FakeSmtp {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Self::serve(listener, behaviour)
    }

    fn serve(listener: TcpListener, behaviour: Behaviour) -> FakeSmtp {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            behaviour,
            delay: Duration::ZERO,
            offer_auth: false,
            connections: 0,
            lines: vec![],
            delivered: vec![],
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                tokio::spawn(session(socket, shared.clone()));
            }
        });
        FakeSmtp { port, state }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn slow(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Offers AUTH PLAIN and LOGIN (and never STARTTLS).
    pub fn offer_auth(&self) {
        self.state.lock().unwrap().offer_auth = true;
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Every command line received (message contents excluded).
    pub fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }

    /// The raw messages accepted.
    pub fn delivered(&self) -> Vec<String> {
        self.state.lock().unwrap().delivered.clone()
    }

    pub fn delivered_to(&self, addr: &str) -> usize {
        self.delivered()
            .iter()
            .filter(|m| m.to_lowercase().contains(&format!("to: {addr}")))
            .count()
    }
}

async fn hang(mut reader: impl AsyncRead + Unpin) {
    let mut sink = tokio::io::sink();
    let _ = tokio::io::copy(&mut reader, &mut sink).await;
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let behaviour = || state.lock().unwrap().behaviour;
    match behaviour() {
        Behaviour::SilentAfterConnect => return hang(reader).await,
        Behaviour::CloseAtOnce => return,
        _ => {}
    }
    if write.write_all(b"220 fake.test ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_string();
        state.lock().unwrap().lines.push(cmd.clone());
        if behaviour() == Behaviour::SilentAfterConnect {
            return hang(reader).await;
        }
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let auth = if state.lock().unwrap().offer_auth {
                "250-AUTH PLAIN LOGIN\r\n"
            } else {
                ""
            };
            format!("250-fake.test\r\n{auth}250-8BITMIME\r\n250 SMTPUTF8\r\n")
        } else if upper.starts_with("AUTH") {
            "235 2.7.0 authenticated\r\n".into()
        } else if upper.starts_with("MAIL FROM") {
            match behaviour() {
                Behaviour::TryLater => "451 4.3.0 try again later\r\n".into(),
                _ => "250 2.1.0 ok\r\n".into(),
            }
        } else if upper.starts_with("RCPT TO") {
            match behaviour() {
                Behaviour::Refuse => "550 5.7.1 relaying denied\r\n".into(),
                _ => "250 2.1.5 ok\r\n".into(),
            }
        } else if upper == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l.trim_end() == "." {
                    break;
                }
                data.push_str(&l);
            }
            if behaviour() == Behaviour::SilentAfterData {
                return hang(reader).await;
            }
            let delay = state.lock().unwrap().delay;
            tokio::time::sleep(delay).await;
            state.lock().unwrap().delivered.push(data);
            "250 2.0.0 queued\r\n".into()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
