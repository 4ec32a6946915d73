# The queue worker: `headstart worker` in a container. Untested here (no
# container runtime on the machines this was written on): kept to plain steps.
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t headstart-worker .
#
# Stage 1 builds dist/ and extracts the bundled backbones into models/ (that
# needs the nsfwjs dev dependency); stage 2 carries only runtime packages.
FROM node:20-slim AS build
WORKDIR /app
# onnxruntime-node's install script downloads CUDA libraries from outside npm; its CPU build ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc* ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build --silent

FROM node:20-slim
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip NODE_ENV=production HEADSTART_CACHE_DIR=/cache
COPY package.json package-lock.json .npmrc* ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/models ./models
COPY bin ./bin
# Not root: the worker only reads the data volume and writes the cache volume.
USER node
# SIGTERM (docker stop, a Kubernetes rollout) lets the job in hand finish, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/headstart.js", "worker"]
# The queue and the roots come from the deployment, e.g.:
CMD ["--queue", "redis://redis:6379", "--data-root", "/data", "--cache", "/cache"]
