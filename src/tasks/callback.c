/* Task callbacks (service_impl.h): a minimal HTTP/1.1 POST over a plain
 * socket (libryot links no HTTP client), to loopback or allow-listed hosts
 * only, so a task cannot make the server probe arbitrary addresses. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tasks/service_impl.h"

#define CALLBACK_TRIES 3
#define CALLBACK_TIMEOUT_S 5

typedef struct url_parts {
    char host[256];
    char port[8];
    char path[1024];
} url_parts;

static bool split_url(const char *url, url_parts *u) {
    if (strncmp(url, "http://", 7)) return false;
    const char *p = url + 7;
    size_t hl;
    if (*p == '[') { /* [v6] */
        const char *e = strchr(p, ']');
        if (!e) return false;
        hl = (size_t)(e - p - 1);
        if (hl == 0 || hl >= sizeof u->host) return false;
        memcpy(u->host, p + 1, hl);
        u->host[hl] = 0;
        p = e + 1;
    } else {
        hl = strcspn(p, ":/?#");
        if (hl == 0 || hl >= sizeof u->host) return false;
        memcpy(u->host, p, hl);
        u->host[hl] = 0;
        p += hl;
    }
    snprintf(u->port, sizeof u->port, "80");
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535) return false;
        snprintf(u->port, sizeof u->port, "%ld", port);
        p = end;
    }
    if (*p && *p != '/' && *p != '?') return false;
    if (strlen(p) >= sizeof u->path) return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) return false; /* no header injection */
    snprintf(u->path, sizeof u->path, "%s", *p ? p : "/");
    return true;
}

static bool loopback_literal(const char *host) {
    if (!strcasecmp(host, "localhost")) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool tasks_callback_allowed(const char *url, char *const *allow, int n_allow, char *why, size_t why_n) {
    url_parts u;
    if (!split_url(url, &u)) {
        snprintf(why, why_n, "'callback_url' must be http://HOST[:PORT]/PATH (no https, spaces or control bytes)");
        return false;
    }
    if (loopback_literal(u.host)) return true;
    for (int i = 0; i < n_allow; i++)
        if (!strcasecmp(allow[i], u.host)) return true;
    snprintf(why, why_n, "callback host '%.64s' is neither loopback nor allowed (ryot serve --callback-allow HOST)",
             u.host);
    return false;
}

static bool post_once(const url_parts *u, const char *body, size_t len) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(u->host, u->port, &hints, &res) || !res) return false;
    bool ok = false;
    for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
        /* a loopback name must reach a loopback address */
        if (loopback_literal(u->host)) {
            const bool lo = ai->ai_family == AF_INET
                                ? (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127
                                : ai->ai_family == AF_INET6 &&
                                      IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
            if (!lo) continue;
        }
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {CALLBACK_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            char head[1536];
            const int hn = snprintf(head, sizeof head,
                                    "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                                    "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: ryot\r\n\r\n",
                                    u->path, u->host, u->port, len);
            bool sent = hn > 0 && (size_t)hn < sizeof head && send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn;
            for (size_t off = 0; sent && off < len;) {
                const ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);
                if (w <= 0) sent = false;
                else off += (size_t)w;
            }
            char st[64];
            size_t got = 0;
            while (sent && got < sizeof st - 1) {
                const ssize_t r = recv(fd, st + got, sizeof st - 1 - got, 0);
                if (r <= 0) break;
                got += (size_t)r;
                if (memchr(st, '\n', got)) break;
            }
            st[got] = 0;
            int code = 0;
            if (sent && sscanf(st, "HTTP/1.%*d %d", &code) == 1 && code >= 200 && code < 300) ok = true;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

bool tasks_callback_post(const char *url, const char *body, size_t len) {
    url_parts u;
    if (!split_url(url, &u)) return false;
    for (int t = 0; t < CALLBACK_TRIES; t++) {
        if (post_once(&u, body, len)) return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 300000000L * (t + 1)};
        nanosleep(&ts, NULL);
    }
    return false;
}
