# syntax=docker/dockerfile:1
#
# Confidential Data Hub (TypeScript).
#   docker build -t confidential-data-hub .
#   docker run -d --stop-timeout 15 -v /run/confidential-containers:/run/confidential-containers \
#     -v /etc/confidential-data-hub:/etc/confidential-data-hub:ro \
#     confidential-data-hub -c /etc/confidential-data-hub/cdh.toml
#
# The build stage compiles with the dev dependencies and packs the package; the runtime stage
# installs that tarball and its production dependencies only, so the image runs exactly the
# files `npm pack` ships (the CI test test/integration/package-install.test.ts installs the same
# tarball the same way).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && mkdir /pkg \
 && npm pack --ignore-scripts --pack-destination /pkg

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
COPY --from=build /pkg/ /tmp/pkg/
# No install scripts run (no production dependency needs one); the package managers are
# removed afterwards: nothing in the image can install or build anything.
RUN npm install -g --omit=dev --ignore-scripts --no-audit --no-fund /tmp/pkg/confidential-data-hub-*.tgz \
 && rm -rf /tmp/pkg /root/.npm \
    /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
    /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /opt/yarn-v* /usr/local/bin/yarn /usr/local/bin/yarnpkg \
 && confidential-data-hub --version

# Runs as root: a non-root user is not possible here, because the daemon creates and owns its
# socket and the provisioned credential files under /run/confidential-containers, a directory
# shared with the attestation agent and the kata-agent, which are root.
VOLUME /run/confidential-containers

# Health through the socket (the default one; change it here if -c moves the socket).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["cdh-tool", "--socket", "unix:///run/confidential-containers/cdh.sock", "--timeout-ms", "4000", "health"]

# SIGTERM: stop accepting, finish the calls in flight (at most 10 s), remove the socket, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["confidential-data-hub"]
