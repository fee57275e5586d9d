# strata peer daemon. Build: docker build -t strata .
# Run:   docker run -v /path/to/model:/models/m:ro -p 4001:4001 strata peer --model /models/m \
#          --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/…/tcp/4001 --identity /data/key
# No container engine runs in CI: test/package/docker.e2e.spec.ts runs this file's build, entrypoint
# and healthcheck commands outside Docker instead (see README, "Docker").
FROM node:22-bookworm-slim AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
# compiled dist/, then only the runtime dependencies
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
WORKDIR /app
# a peer serves /metrics and /healthz on this port, on 127.0.0.1 (add --metrics-host 0.0.0.0 to scrape it)
ENV NODE_ENV=production STRATA_LOG_LEVEL=warn STRATA_METRICS_PORT=9100
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY docker ./docker
RUN useradd --create-home --uid 10001 strata && mkdir -p /models /data && chown strata /models /data
USER strata
VOLUME ["/models", "/data"]
EXPOSE 4001
# healthy while the peer itself says it serves (GET /healthz: 200 online, 503 joining or draining,
# nothing when it is down); a gateway container sets STRATA_HEALTH_URL to its /health instead
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD ["node", "docker/healthcheck.js"]
# no src/ in the image: bin/strata.js runs the compiled dist/
ENTRYPOINT ["node", "bin/strata.js"]
CMD ["--help"]
