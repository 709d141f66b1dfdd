//! ESP32 entry point: an open softAP at 192.168.4.1, captive-portal DNS, and esp_http_server with
//! a WebSocket endpoint at `/ws` driving `espsim_firmware::Device` — the same logic the espsim
//! emulator runs on a laptop. Glue only; the behaviour lives in `espsim-firmware`.

mod board;
mod dns;
mod ws;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, mpsc};

use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::gpio::{PinDriver, Pull};
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::http::Method;
use esp_idf_svc::http::server::{Configuration as HttpConfig, EspHttpServer};
use esp_idf_svc::io::Write;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::wifi::{
    AccessPointConfiguration, AuthMethod, BlockingWifi, ClientConfiguration, Configuration, EspWifi,
};
use espsim_firmware::{Device, DeviceSettings};

use crate::board::EspBoard;

/// The softAP address ESP-IDF assigns by default (`esp_netif_defaults.c`).
const AP_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

fn main() -> anyhow::Result<()> {
    esp_idf_svc::sys::link_patches();
    esp_idf_svc::log::EspLogger::initialize_default();
    ws::now_ms(); // start the clock at boot

    let peripherals = Peripherals::take()?;
    let sysloop = EspSystemEventLoop::take()?;
    let nvs = EspDefaultNvsPartition::take()?;

    let mut wifi = BlockingWifi::wrap(
        EspWifi::new(peripherals.modem, sysloop.clone(), Some(nvs.clone()))?,
        sysloop,
    )?;
    let mac = wifi.wifi().ap_netif().get_mac()?;
    let device_id = format!("esp32-{:02x}{:02x}{:02x}", mac[3], mac[4], mac[5]);
    let ap = AccessPointConfiguration {
        ssid: device_id
            .as_str()
            .try_into()
            .map_err(|_| anyhow::anyhow!("ssid too long"))?,
        channel: 1,
        auth_method: AuthMethod::None,
        max_connections: 4,
        ..Default::default()
    };
    // AP+STA from the start, so `provision` can scan and join without restarting the radio.
    wifi.set_configuration(&Configuration::Mixed(
        ClientConfiguration::default(),
        ap.clone(),
    ))?;
    wifi.start()?;
    wifi.wait_netif_up()?;
    log::info!("softAP `{device_id}` up at {AP_IP}");

    let board = EspBoard::new(
        PinDriver::output(peripherals.pins.gpio2)?,
        PinDriver::output(peripherals.pins.gpio4)?,
        PinDriver::input(peripherals.pins.gpio0, Pull::Up)?,
        nvs,
        wifi,
        ap,
    )?;
    let settings = DeviceSettings {
        device_id,
        firmware_version: env!("CARGO_PKG_VERSION").to_string(),
        // Set at build time: `ESPSIM_TOKEN=… cargo build --release`.
        auth_token: option_env!("ESPSIM_TOKEN").map(str::to_string),
        // Real joins: Board::join_wifi ignores the simulated network list.
        networks: Vec::new(),
        ..DeviceSettings::default()
    };
    let device: ws::SharedDevice = Arc::new(Mutex::new(Device::new(board, settings)));

    std::thread::Builder::new()
        .name("dns".into())
        .stack_size(6 * 1024)
        .spawn(|| {
            if let Err(e) = dns::serve(AP_IP) {
                log::error!("captive dns stopped: {e}");
            }
        })?;

    let senders: ws::Senders = Arc::default();
    let (outbox, pending) = mpsc::channel();
    let mut server = EspHttpServer::new(&HttpConfig {
        stack_size: 12 * 1024,
        uri_match_wildcard: true,
        ..Default::default()
    })?;
    {
        let (device, senders) = (device.clone(), senders.clone());
        server.ws_handler("/ws", None, move |conn| {
            ws::handle(conn, &device, &senders, &outbox)
        })?;
    }
    server.fn_handler("/", Method::Get, |req| {
        req.into_ok_response()?
            .write_all(b"espsim device: connect a WebSocket to ws://192.168.4.1/ws\n")
    })?;
    // Captive portal: any other path (OS connectivity checks) is sent to the root page.
    server.fn_handler("/*", Method::Get, |req| {
        req.into_response(302, Some("Found"), &[("Location", "http://192.168.4.1/")])?
            .flush()
    })?;

    ws::run(device, senders, pending)
}
