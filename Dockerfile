# strata peer daemon. Build: docker build -t strata .
# Run:   docker run -v /path/to/model:/models/m:ro -p 4001:4001 strata peer --model /models/m \
#          --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/…/p2p/…
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
ENV NODE_ENV=production STRATA_LOG_LEVEL=warn
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
RUN useradd --create-home --uid 10001 strata && mkdir -p /models /data && chown strata /data
USER strata
VOLUME ["/models", "/data"]
EXPOSE 4001
# the peer is healthy while its process answers; the CLI exits non-zero on fatal errors
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD node -e "process.kill(1, 0)" || exit 1
# no src/ in the image: bin/strata.js runs the compiled dist/
ENTRYPOINT ["node", "bin/strata.js"]
CMD ["--help"]
