# nsqd from this repository, on a slim Python base, as a non-root user.
#
#   docker build -t nsqsim .
#   docker run -d --name nsqd -p 4150:4150 -p 4151:4151 -v nsqd-data:/data nsqsim \
#       --data-path=/data --broadcast-address=<name clients reach this host by>
#   docker run -d --name nsqlookupd -p 4160:4160 -p 4161:4161 --entrypoint nsqlookupd nsqsim
#
# The arguments after the image are nsqd's flags (they replace CMD, so keep
# --data-path=/data). The healthcheck asks nsqd's /ping on port 4151 inside
# the container: 200 OK while healthy, 500 once a disk queue has failed.
# See docs/production.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY model ./model
COPY nsqsim ./nsqsim
# The package and its runtime dependencies as wheels; no dev or analysis extras.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin nsq \
    && mkdir -p /data && chown nsq:nsq /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER nsq
WORKDIR /data
VOLUME /data
EXPOSE 4150 4151
ENV PYTHONUNBUFFERED=1
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\ntry:\n    sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4151/ping', timeout=2).status == 200 else 1)\nexcept Exception:\n    sys.exit(1)"]
# SIGTERM is nsqd's graceful stop: it saves every queued, in-flight and deferred message.
STOPSIGNAL SIGTERM
ENTRYPOINT ["nsqd"]
CMD ["--data-path=/data"]
