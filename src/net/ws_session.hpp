#pragma once
// Internal to src/net (includes Beast): hands an upgraded HTTP connection to a WebSocket session.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>

#include "net/websocket.hpp"

namespace chat::net::detail {

/// Takes over `stream` (with any bytes already read in `buffer`), completes the WebSocket
/// handshake for `req` and drives `handler`. Runs on the stream's strand. `guard` is held as
/// long as the WebSocket lives (the server counts open connections with it).
void start_websocket(boost::beast::tcp_stream&& stream, boost::beast::flat_buffer&& buffer,
                     boost::beast::http::request<boost::beast::http::string_body>&& req,
                     std::shared_ptr<WsHandler> handler, const WsOptions& options,
                     std::shared_ptr<void> guard);

}  // namespace chat::net::detail
