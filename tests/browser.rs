//! The browser harness checks itself: a page that logs a console error and reaches for an
//! outside host is caught by both checks, and a clean page passes them. Without this, a
//! page test could pass because the checks see nothing at all.

mod common;

use common::browser::Browser;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Serves `page` as text/html to every request on a loopback port, for the test's lifetime.
fn serve(page: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut line = String::new();
            // The request line and headers, up to the blank line.
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_console_error_and_an_outside_request_are_caught() {
    let Some(browser) = Browser::start().await else { return };
    let origin = serve(
        "<!doctype html><title>bad</title><p>bad page</p>\
         <img src=\"https://cdn.example.com/logo.png\" alt=\"\">\
         <script>console.error('broken on purpose');</script>",
    );
    browser.goto(&origin).await;
    browser.wait_for_text("bad page").await;
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("broken on purpose")),
        "the console error was not seen: {errors:?}"
    );
    let outside = browser.external_requests(&origin).await;
    assert_eq!(outside, vec!["https://cdn.example.com/logo.png".to_owned()]);
    browser.close().await;
}

#[tokio::test]
async fn a_clean_page_passes_and_is_photographed() {
    let Some(browser) = Browser::start().await else { return };
    let origin = serve("<!doctype html><html lang=en><title>ok</title><h1>All good</h1></html>");
    browser.goto(&origin).await;
    browser.phone().await;
    let text = browser.wait_for_text("All good").await;
    assert_eq!(text.trim(), "All good");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    assert_eq!(browser.external_requests(&origin).await, Vec::<String>::new());
    let shot = browser.screenshot("browser-harness-phone").await;
    let png = std::fs::read(&shot).expect("read the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());
    browser.close().await;
}
