//! Tomcat's multi-player snake example, ported: `SnakeAnnotation` at `/websocket/snake`, the
//! game loop of `SnakeTimer`, and the browser page at `/`.
//!
//! ```text
//! cargo run --example tomcat_snake                      # then open http://127.0.0.1:8080/
//! cargo run --example tomcat_snake -- 127.0.0.1:9000    # or: TOMCAT_SNAKE_ADDR=0.0.0.0:8080
//! ```
//!
//! Open the page in two or more windows and steer with the arrow keys (or WASD). The originals
//! are `websocket.snake.{SnakeAnnotation, SnakeTimer, Snake, Location, Direction}` in Tomcat's
//! `webapps/examples/WEB-INF/classes/` and the page `webapps/examples/websocket/snake.xhtml`.
//!
//! # The game, and what goes on the wire
//!
//! Each connection gets a snake with a process-wide id (0, 1, …, Java's static
//! `AtomicInteger snakeIds`), a random pale color and a random start cell of a 64 × 48 grid of
//! 10-pixel cells (a 640 × 480 playfield). Messages are text, JSON built as the Java builds it
//! (the same field names, order and spacing):
//!
//! * on open, to every player (the newcomer included), the list of all snakes:
//!   `{"type": "join","data":[{"id": 0, "color": "#d8e5cc"},{"id": 1, "color": "#cfd8e5"}]}`;
//! * every tick (100 ms, `TICK_DELAY`), each snake moves one cell in its direction (wrapping at
//!   the edges; a snake with no direction yet stays put), then collisions are handled, and
//!   everyone gets every snake's body, head first:
//!   `{"type": "update", "data" : [{"id":0,"body":[{"x": 100, "y": 50},{"x": 90, "y": 50}]}]}`;
//! * a snake whose head runs into any snake's tail (its own included), or into another snake's
//!   head, dies: it gets `{"type": "dead"}` and starts again, length 5, at a random cell, with no
//!   direction; the owner of the snake it ran into gets `{"type": "kill"}` and grows by one;
//! * on close, to the players left: `{"type": "leave", "id": 0}`;
//! * from the client: `west`, `north`, `east` or `south` sets its snake's direction; anything
//!   else is ignored.
//!
//! The game state (all snakes) lives in one `Mutex<Game>`; one task ticks it, started when the
//! first snake joins and stopped when the last one leaves, as `SnakeTimer` starts and cancels its
//! `java.util.Timer`.
//!
//! # Side by side
//!
//! ```text
//! @ServerEndpoint("/websocket/snake")                 #[server_endpoint("/websocket/snake", …)]
//! public class SnakeAnnotation {                      impl SnakeAnnotation {
//!   @OnOpen                                             #[on_open]
//!   public void onOpen(Session session) {               async fn on_open(session: &Session) -> Self {
//!     this.snake = new Snake(id, session);                let (join, players) =
//!     SnakeTimer.addSnake(snake);                             game().add_snake(id, session.clone());
//!     SnakeTimer.broadcast(                               deliver(/* join to every player */).await;
//!         "{\"type\": \"join\",\"data\":[…]}");         SnakeAnnotation { id }
//!                                                       }
//!   }
//!   @OnMessage                                          #[on_message]
//!   public void onTextMessage(String message) {         fn on_text_message(&mut self, message: String) {
//!     if ("west".equals(message))                         let direction = match message.as_str() {
//!       snake.setDirection(Direction.WEST); …                 "west" => Direction::West, …
//!   }                                                     };
//!                                                         game().board.set_direction(id, direction);
//!                                                       }
//!   @OnClose                                            #[on_close]
//!   public void onClose() {                             async fn on_close(&mut self) {
//!     SnakeTimer.removeSnake(snake);                      let players = game().remove_snake(id);
//!     SnakeTimer.broadcast(                               deliver(/* leave to every player */).await;
//!         "{\"type\": \"leave\", \"id\": …}");          }
//!   }
//!   @OnError                                            #[on_error]
//!   public void onError(Throwable t, Session s) {…}     fn on_error(&mut self, t: EndpointError) {…}
//! }                                                   }
//!
//! SnakeTimer: static ConcurrentHashMap + Timer         static GAME: Mutex<Game> + one spawned task
//!   scheduleAtFixedRate(tick, 100, 100)                  tokio::time::interval_at(now + 100 ms, 100 ms)
//!   tick(): update each snake, then broadcast            Game::tick() under the lock, then deliver()
//! ```
//!
//! # Differences from the Java original
//!
//! * **Reversing is refused by the server.** In Tomcat only the page refuses a key that points
//!   back the way the snake goes; the server takes any direction, so a client that sends `west`
//!   while going east turns into its own neck and dies. Here the server ignores a direction
//!   opposite to the snake's last move (the page still checks too). Comparing with the last
//!   *move*, not the last message, also stops two quick keys within one tick (north, then west
//!   while going east) from reversing the snake.
//! * **Edges.** Java wraps a snake leaving at the left or top edge to x = 640 or y = 480, one
//!   cell outside the canvas (it is drawn off-screen for a tick), and its random start cell can
//!   be x = 640 or y = 480 too (rounding to the nearest cell). Here a snake wraps to the last
//!   cell (x = 630, y = 470) and starts on one of the 64 × 48 cells of the canvas.
//! * **Who goes first.** Java's `ConcurrentHashMap<Integer, Snake>` iterates small ids in
//!   ascending order; here a `BTreeMap` does so always, so `data` is sorted by id.
//! * **Sends.** Tomcat sends with `getBasicRemote()`, one client after the other, so one slow
//!   client delays the tick for all. Here each tick's messages go to the players concurrently
//!   (each player's in order: `dead` / `kill`, then the update) and the next tick starts once
//!   they are all queued. A client that stops reading is dropped by the runtime after
//!   `send_timeout` (10 s) with 1006, then removed by `on_close` (Tomcat's `sendMessage` closes
//!   the session itself on an `IOException`).
//! * **Errors.** Java's `@OnError` closes the session and calls `onClose()` itself, so its
//!   `onClose` can run twice (two `leave` broadcasts). Here `on_close` runs exactly once per
//!   session, whatever ended it, and `on_error` only logs.
//! * **Timer.** `scheduleAtFixedRate` catches up after a late tick; the interval here delays
//!   instead (`MissedTickBehavior::Delay`): no burst of updates after a stall.
//! * **Keep-alive.** Tomcat's page sends the text `ping` every 5 s "to prevent server read
//!   timeout" (ignored by the server); the runtime's heartbeat (a ping every 30 s) does that
//!   here, so the page does not.
//! * **Limits.** Tomcat buffers a whole text message in 8192 characters by default; this
//!   endpoint sets `max_message_size = 8192` (bytes). A binary message closes the session with
//!   1003 here; Tomcat drops it.
//! * **Randomness.** `java.util.Random` becomes a xorshift64* generator seeded from the clock (no
//!   dependency); colors use the same hue / saturation / brightness ranges and the same HSB to
//!   RGB conversion as `java.awt.Color.getHSBColor`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix_web::HttpResponse;
use tokio::{
    task::AbortHandle,
    time::{interval_at, Instant, MissedTickBehavior},
};
use ws_endpoint::prelude::*;

/// Playfield width in pixels.
pub const PLAYFIELD_WIDTH: i32 = 640;
/// Playfield height in pixels.
pub const PLAYFIELD_HEIGHT: i32 = 480;
/// Side of one cell in pixels; a snake moves one cell per tick.
pub const GRID_SIZE: i32 = 10;
/// Tail length of a new snake (its body is the head plus the tail).
pub const DEFAULT_LENGTH: usize = 5;
/// Time between two ticks of the game loop.
pub const TICK_DELAY: Duration = Duration::from_millis(100);

/// Snake ids, process-wide (Java's `static AtomicInteger snakeIds`).
static SNAKE_IDS: AtomicU32 = AtomicU32::new(0);

/// The game: every snake of this process, and the ticking task (`SnakeTimer`'s statics).
static GAME: Mutex<Game> = Mutex::new(Game {
    board: Board::new(),
    sessions: BTreeMap::new(),
    timer: None,
});

/// The game, locked. Never hold the guard across an `.await`.
fn game() -> MutexGuard<'static, Game> {
    // Every critical section leaves the game consistent, so a poisoned lock is still usable.
    GAME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the game loop is running (for the test: it stops when the last snake leaves).
#[allow(dead_code)]
pub fn timer_running() -> bool {
    game().timer.as_ref().is_some_and(|t| !t.is_finished())
}

/// `java.util.Random`'s part here: xorshift64*, seeded from the clock on first use.
struct Random(u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        if self.0 == 0 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            self.0 = (nanos ^ 0x9E37_79B9_7F4A_7C15) | 1;
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`nextInt(bound)`; the modulo bias is negligible here).
    fn next_int(&mut self, bound: u32) -> u32 {
        (self.next_u64() >> 32) as u32 % bound
    }

    /// A float in `[0, 1)` (`nextFloat()`).
    fn next_float(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A pale color: random hue, saturation 0.1–0.3, brightness 0.9 (`getRandomHexColor`).
    fn hex_color(&mut self) -> String {
        let hue = self.next_float();
        let saturation = (self.next_int(2000) + 1000) as f32 / 10000.0;
        let (r, g, b) = hsb_to_rgb(hue, saturation, 0.9);
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// A random cell of the playfield (`getRandomLocation`).
    fn location(&mut self) -> Location {
        Location {
            x: self.next_int((PLAYFIELD_WIDTH / GRID_SIZE) as u32) as i32 * GRID_SIZE,
            y: self.next_int((PLAYFIELD_HEIGHT / GRID_SIZE) as u32) as i32 * GRID_SIZE,
        }
    }
}

/// `java.awt.Color.HSBtoRGB`.
fn hsb_to_rgb(hue: f32, saturation: f32, brightness: f32) -> (u8, u8, u8) {
    let byte = |v: f32| (v * 255.0 + 0.5) as u8;
    if saturation == 0.0 {
        let v = byte(brightness);
        return (v, v, v);
    }
    let h = (hue - hue.floor()) * 6.0;
    let f = h - h.floor();
    let p = brightness * (1.0 - saturation);
    let q = brightness * (1.0 - saturation * f);
    let t = brightness * (1.0 - saturation * (1.0 - f));
    let (r, g, b) = match h as u32 {
        0 => (brightness, t, p),
        1 => (q, brightness, p),
        2 => (p, brightness, t),
        3 => (p, q, brightness),
        4 => (t, p, brightness),
        _ => (brightness, p, q),
    };
    (byte(r), byte(g), byte(b))
}

/// Where a snake goes (`Direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    None,
    North,
    South,
    East,
    West,
}

impl Direction {
    fn opposite(self) -> Direction {
        match self {
            Direction::None => Direction::None,
            Direction::North => Direction::South,
            Direction::South => Direction::North,
            Direction::East => Direction::West,
            Direction::West => Direction::East,
        }
    }
}

/// A cell, by its top-left pixel (`Location`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub x: i32,
    pub y: i32,
}

impl Location {
    /// The next cell in `direction` (`getAdjacentLocation`), not yet wrapped.
    fn adjacent(self, direction: Direction) -> Location {
        let Location { x, y } = self;
        match direction {
            Direction::North => Location {
                x,
                y: y - GRID_SIZE,
            },
            Direction::South => Location {
                x,
                y: y + GRID_SIZE,
            },
            Direction::East => Location {
                x: x + GRID_SIZE,
                y,
            },
            Direction::West => Location {
                x: x - GRID_SIZE,
                y,
            },
            Direction::None => self,
        }
    }
}

/// One player's snake (`Snake`).
struct Snake {
    id: u32,
    direction: Direction,
    /// The direction of the last move (what a reversal is checked against).
    last_move: Direction,
    length: usize,
    head: Location,
    tail: VecDeque<Location>,
    hex_color: String,
}

impl Snake {
    /// Back to the start: no direction, length 5, at `head` (`resetState`).
    fn reset_state(&mut self, head: Location) {
        self.direction = Direction::None;
        self.last_move = Direction::None;
        self.head = head;
        self.tail.clear();
        self.length = DEFAULT_LENGTH;
    }

    /// One step (the first half of `update`): the head moves one cell, wrapping at the edges,
    /// and the tail follows, no longer than `length`.
    fn advance(&mut self) {
        let mut next = self.head.adjacent(self.direction);
        if next.x >= PLAYFIELD_WIDTH {
            next.x = 0;
        }
        if next.y >= PLAYFIELD_HEIGHT {
            next.y = 0;
        }
        if next.x < 0 {
            next.x = PLAYFIELD_WIDTH - GRID_SIZE;
        }
        if next.y < 0 {
            next.y = PLAYFIELD_HEIGHT - GRID_SIZE;
        }
        if self.direction != Direction::None {
            self.tail.push_front(self.head);
            if self.tail.len() > self.length {
                self.tail.pop_back();
            }
            self.head = next;
            self.last_move = self.direction;
        }
    }

    /// `{"id":0,"body":[{"x": 10, "y": 20},…]}`, head first (`getLocationsJson`).
    fn locations_json(&self) -> String {
        let body: Vec<String> = std::iter::once(&self.head)
            .chain(&self.tail)
            .map(|l| format!("{{\"x\": {}, \"y\": {}}}", l.x, l.y))
            .collect();
        format!("{{\"id\":{},\"body\":[{}]}}", self.id, body.join(","))
    }
}

/// To the snake that died.
pub const DEAD: &str = r#"{"type": "dead"}"#;
/// To the owner of the snake it ran into.
pub const KILL: &str = r#"{"type": "kill"}"#;

/// The rules, without the network: every snake by id, in id order (`Snake` and
/// `SnakeTimer.tick`). The integration test drives it directly too.
pub struct Board {
    snakes: BTreeMap<u32, Snake>,
    random: Random,
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

impl Board {
    /// An empty board, its random generator seeded from the clock on first use.
    pub const fn new() -> Board {
        Board::with_seed(0)
    }

    /// An empty board whose random colors and cells follow from `seed` (0: from the clock).
    pub const fn with_seed(seed: u64) -> Board {
        Board {
            snakes: BTreeMap::new(),
            random: Random(seed),
        }
    }

    /// Adds snake `id` (random color, random cell, no direction); returns the join message
    /// listing every snake: `{"type": "join","data":[{"id": 0, "color": "#d8e5cc"},…]}`.
    pub fn add_snake(&mut self, id: u32) -> String {
        let hex_color = self.random.hex_color();
        let head = self.random.location();
        self.snakes.insert(
            id,
            Snake {
                id,
                direction: Direction::None,
                last_move: Direction::None,
                length: DEFAULT_LENGTH,
                head,
                tail: VecDeque::new(),
                hex_color,
            },
        );
        let data: Vec<String> = self
            .snakes
            .values()
            .map(|s| format!("{{\"id\": {}, \"color\": \"{}\"}}", s.id, s.hex_color))
            .collect();
        format!("{{\"type\": \"join\",\"data\":[{}]}}", data.join(","))
    }

    /// Removes snake `id`; returns whether it was there.
    pub fn remove_snake(&mut self, id: u32) -> bool {
        self.snakes.remove(&id).is_some()
    }

    /// Sets snake `id`'s direction, unless it points back along the snake's last move.
    pub fn set_direction(&mut self, id: u32, direction: Direction) {
        if let Some(snake) = self.snakes.get_mut(&id) {
            if direction != snake.last_move.opposite() {
                snake.direction = direction;
            }
        }
    }

    /// Puts snake `id` at `head` with an empty tail (its length kept), going `direction`
    /// (tests only).
    #[cfg(test)]
    pub fn place(&mut self, id: u32, head: Location, direction: Direction) {
        if let Some(snake) = self.snakes.get_mut(&id) {
            snake.head = head;
            snake.tail.clear();
            snake.direction = direction;
            snake.last_move = Direction::None;
        }
    }

    /// One tick (`SnakeTimer.tick`): each snake in turn, in id order, moves and has its
    /// collisions handled. Returns the update for everyone,
    /// `{"type": "update", "data" : [{"id":0,"body":[…]},…]}`, and the `dead` / `kill` messages
    /// for some snakes, to be sent before the update.
    pub fn tick(&mut self) -> (String, BTreeMap<u32, Vec<&'static str>>) {
        let ids: Vec<u32> = self.snakes.keys().copied().collect();
        let mut notes: BTreeMap<u32, Vec<&'static str>> = BTreeMap::new();
        let mut bodies = Vec::with_capacity(ids.len());
        for &id in &ids {
            if let Some(snake) = self.snakes.get_mut(&id) {
                snake.advance();
            }
            self.handle_collisions(id, &ids, &mut notes);
            if let Some(snake) = self.snakes.get(&id) {
                bodies.push(snake.locations_json());
            }
        }
        let update = format!(
            "{{\"type\": \"update\", \"data\" : [{}]}}",
            bodies.join(",")
        );
        (update, notes)
    }

    /// Snake `id` dies if its head is on any tail (its own included) or on another snake's
    /// head, and the other snake's owner is rewarded (`handleCollisions`, `kill`, `reward`).
    fn handle_collisions(
        &mut self,
        id: u32,
        ids: &[u32],
        notes: &mut BTreeMap<u32, Vec<&'static str>>,
    ) {
        for &other_id in ids {
            // Re-read on every turn: a kill moves the head, as in Java.
            let (Some(snake), Some(other)) = (self.snakes.get(&id), self.snakes.get(&other_id))
            else {
                continue;
            };
            let head_collision = id != other_id && other.head == snake.head;
            let tail_collision = other.tail.contains(&snake.head);
            if !(head_collision || tail_collision) {
                continue;
            }
            let start = self.random.location();
            if let Some(snake) = self.snakes.get_mut(&id) {
                snake.reset_state(start);
                notes.entry(id).or_default().push(DEAD);
            }
            if id != other_id {
                if let Some(other) = self.snakes.get_mut(&other_id) {
                    other.length += 1;
                    notes.entry(other_id).or_default().push(KILL);
                }
            }
        }
    }
}

/// What to send: each session with its messages, in order.
type Outgoing = Vec<(Session, Vec<String>)>;

/// The game of this process (`SnakeTimer`'s statics): the board, each snake's session, and the
/// game loop.
struct Game {
    board: Board,
    sessions: BTreeMap<u32, Session>,
    timer: Option<AbortHandle>,
}

impl Game {
    /// Adds a snake for `session`, starting the game loop if it is not running (`addSnake`);
    /// returns the join message and who gets it: everyone.
    fn add_snake(&mut self, id: u32, session: Session) -> (String, Vec<Session>) {
        if self.timer.as_ref().is_none_or(AbortHandle::is_finished) {
            self.timer = Some(actix_web::rt::spawn(run_timer()).abort_handle());
        }
        self.sessions.insert(id, session);
        let join = self.board.add_snake(id);
        (join, self.sessions.values().cloned().collect())
    }

    /// Removes snake `id`, stopping the game loop after the last one (`removeSnake`); returns
    /// the players left.
    fn remove_snake(&mut self, id: u32) -> Vec<Session> {
        self.board.remove_snake(id);
        self.sessions.remove(&id);
        if self.sessions.is_empty() {
            if let Some(timer) = self.timer.take() {
                timer.abort();
            }
        }
        self.sessions.values().cloned().collect()
    }

    /// One tick: each player gets its `dead` / `kill` messages, then the update.
    fn tick(&mut self) -> Outgoing {
        let (update, mut notes) = self.board.tick();
        self.sessions
            .iter()
            .map(|(id, session)| {
                let mut messages: Vec<String> = notes
                    .remove(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                messages.push(update.clone());
                (session.clone(), messages)
            })
            .collect()
    }
}

/// The game loop (`SnakeTimer.startTimer`): a tick every [`TICK_DELAY`], the first one
/// [`TICK_DELAY`] from now; ends when no snake is left.
async fn run_timer() {
    let mut ticks = interval_at(Instant::now() + TICK_DELAY, TICK_DELAY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outgoing = {
            let mut game = game();
            if game.sessions.is_empty() {
                game.timer = None;
                return;
            }
            game.tick()
        };
        deliver(outgoing).await;
    }
}

/// Sends each session its messages, in order, all sessions at once; returns when every send
/// is done or has failed (a failed send means the session is closed: the runtime drops a peer
/// that stops reading, and its `on_close` removes the snake).
async fn deliver(outgoing: Outgoing) {
    let sends: Vec<_> = outgoing
        .into_iter()
        .map(|(session, messages)| {
            actix_web::rt::spawn(async move {
                for message in messages {
                    if session.text(message).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    for send in sends {
        let _ = send.await;
    }
}

/// Sends `message` to each of `sessions`.
async fn broadcast(sessions: Vec<Session>, message: String) {
    deliver(
        sessions
            .into_iter()
            .map(|s| (s, vec![message.clone()]))
            .collect(),
    )
    .await;
}

/// One player (`SnakeAnnotation`): its snake's id.
pub struct SnakeAnnotation {
    id: u32,
}

#[server_endpoint("/websocket/snake", max_message_size = 8192)]
impl SnakeAnnotation {
    /// Java takes the id in the constructor and adds the snake in `@OnOpen`; here the
    /// constructor-style `on_open` does both, right after the handshake.
    #[on_open]
    async fn on_open(session: &Session) -> Self {
        let id = SNAKE_IDS.fetch_add(1, Ordering::Relaxed);
        let (join, players) = game().add_snake(id, session.clone());
        broadcast(players, join).await;
        SnakeAnnotation { id }
    }

    #[on_message]
    fn on_text_message(&mut self, message: String) {
        let direction = match message.as_str() {
            "west" => Direction::West,
            "north" => Direction::North,
            "east" => Direction::East,
            "south" => Direction::South,
            _ => return,
        };
        game().board.set_direction(self.id, direction);
    }

    #[on_close]
    async fn on_close(&mut self) {
        let id = self.id;
        let players = game().remove_snake(id);
        broadcast(players, format!("{{\"type\": \"leave\", \"id\": {id}}}")).await;
    }

    #[on_error]
    fn on_error(&mut self, t: EndpointError) {
        // Every error that reaches here closes the session (the text handler cannot fail);
        // `on_close` then removes the snake.
        tracing::info!("snake: {t}");
    }
}

/// The page (a port of Tomcat's `websocket/snake.xhtml`).
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("tomcat_snake.html"))
}

/// The page at `/` and the endpoint at `/websocket/snake` (also used by
/// `tests/tomcat_examples.rs`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .service(SnakeAnnotation::endpoint());
}

#[allow(dead_code)] // the integration test includes this file as a module
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TOMCAT_SNAKE_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let server = HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("tomcat_snake: open http://{bound}/ in a browser (endpoint: ws://{bound}/websocket/snake)");
    }
    server.run().await
}
