# strata peer daemon. Build: docker build -t strata .
# Run:   docker run -v /path/to/model:/models/m:ro -p 4001:4001 strata peer --model /models/m \
#          --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/…/p2p/…
FROM node:22-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production STRATA_LOG_LEVEL=warn
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
RUN useradd --create-home --uid 10001 strata && mkdir -p /models /data && chown strata /data
USER strata
VOLUME ["/models", "/data"]
EXPOSE 4001
# the peer is healthy while its process answers; the CLI exits non-zero on fatal errors
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD node -e "process.kill(1, 0)" || exit 1
ENTRYPOINT ["node", "bin/strata.js"]
CMD ["--help"]
