//! ESP32-C3 entry point, bare metal: an open softAP at 192.168.4.1 (esp-radio), DHCP
//! (edge-dhcp), captive DNS (edge-captive), and an HTTP/WebSocket server (edge-http request
//! parsing, edge-ws frames) driving `espsim_firmware::Device` — the same logic the espsim
//! emulator runs. Glue only: behaviour lives in `espsim-firmware` (device logic, the captive
//! answer table in `espsim_firmware::captive`, the flash record in `espsim_firmware::flash`).

#![no_std]
#![no_main]

extern crate alloc;

mod board;
mod hub;
mod net;
mod web;

use alloc::format;
use alloc::string::ToString;
use core::net::Ipv4Addr;

use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_radio::wifi::ap::AccessPointConfig;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{Config, ControllerConfig, Interface, WifiController};
use espsim_firmware::captive::{AP_ADDRESS, EDGE_LIMITS};
use espsim_firmware::{Device, DeviceSettings};
use static_cell::StaticCell;

use crate::board::C3Board;
use crate::hub::Hub;

esp_bootloader_esp_idf::esp_app_desc!();

/// Sockets: one per HTTP/WebSocket worker, plus DNS and DHCP.
const SOCKETS: usize = EDGE_LIMITS.max_open_sockets + 2;

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 48 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let ap_interface = Interface::access_point();
    let mac = ap_interface.mac_address();
    let device_id = format!("esp32c3-{:02x}{:02x}{:02x}", mac[3], mac[4], mac[5]);
    let ap_config = AccessPointConfig::default()
        .with_ssid(device_id.as_str().try_into().expect("a 14-byte SSID fits"))
        .with_channel(1);
    // AP+STA from the start, so `provision` can scan and join without restarting the radio.
    let controller = WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(Config::AccessPointStation(
            StationConfig::default(),
            ap_config.clone(),
        )),
    )
    .expect("the Wi-Fi driver starts");
    log::info!("softAP `{device_id}` up");

    let board = C3Board::new(
        Output::new(peripherals.GPIO8, Level::High, OutputConfig::default()),
        Output::new(peripherals.GPIO4, Level::Low, OutputConfig::default()),
        Input::new(
            peripherals.GPIO9,
            InputConfig::default().with_pull(Pull::Up),
        ),
        esp_hal::tsens::TemperatureSensor::new(peripherals.TSENS, Default::default()).ok(),
        esp_storage::FlashStorage::new(peripherals.FLASH),
        controller,
        ap_config,
    );
    let settings = DeviceSettings {
        device_id,
        firmware_version: env!("CARGO_PKG_VERSION").to_string(),
        // Set at build time: `ESPSIM_TOKEN=… cargo build --release`.
        auth_token: option_env!("ESPSIM_TOKEN").map(str::to_string),
        // Real joins: `C3Board::join_wifi` ignores the simulated network list.
        networks: alloc::vec::Vec::new(),
        ..DeviceSettings::default()
    };
    let hub: &'static Hub = Hub::leak(Device::new(board, settings));

    let ip = Ipv4Addr::from(AP_ADDRESS);
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip, 24),
        gateway: Some(ip),
        dns_servers: Default::default(),
    });
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    static RESOURCES: StaticCell<StackResources<SOCKETS>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        ap_interface,
        net_config,
        RESOURCES.init(StackResources::new()),
        seed,
    );

    spawner.spawn(net_task(runner).expect("net task"));
    spawner.spawn(net::dhcp_task(stack, ip).expect("dhcp task"));
    spawner.spawn(net::dns_task(stack, ip).expect("dns task"));
    for slot in 0..EDGE_LIMITS.max_open_sockets {
        spawner.spawn(web::http_task(stack, hub, slot).expect("http task"));
    }
    log::info!("serving http://{ip}/ and ws://{ip}/ws");
    hub::timer_loop(hub).await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}
