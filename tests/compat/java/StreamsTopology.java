import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * A Kafka Streams application for the ecosystem test. Input: {prefix}clicks (key user, value page) and the
 * compacted table {prefix}users (key user, value region), co-partitioned. Three sub-topologies' outputs:
 * <ul>
 *   <li>{prefix}click-counts: clicks per user per 10 s tumbling window, key "user@windowStartMs";</li>
 *   <li>{prefix}enriched: each click left-joined with the user's region, value "page|region";</li>
 *   <li>{prefix}page-counts: clicks per page, after selectKey(page) + groupByKey, which goes through the
 *       repartition topic {applicationId}-by-page-repartition (Streams purges it with DeleteRecords).</li>
 * </ul>
 * Record caches are off so every update reaches the output topics. Prints "STATE new" on each state change
 * and "TABLE user region" once the table has taken a row, so the test can wait for it.
 * Args: bootstrap applicationId topicPrefix stateDir replicationFactor commitIntervalMs [processingGuarantee]
 * (at_least_once unless the seventh names another, e.g. exactly_once_v2).
 */
public final class StreamsTopology {
    static final Duration WINDOW = Duration.ofSeconds(10);

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static Topology build(String prefix) {
        Serde<String> s = Serdes.String();
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> clicks = builder.stream(prefix + "clicks", Consumed.with(s, s));
        KTable<String, String> users = builder.table(prefix + "users", Consumed.with(s, s), Materialized.as("users-store"));
        users.toStream().foreach((user, region) -> emit("TABLE " + user + " " + region));

        clicks.groupByKey(Grouped.with(s, s))
            // A grace of an hour: the test's event times run a little out of order across partitions.
            .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, Duration.ofHours(1)))
            .count(Materialized.as("clicks-per-window"))
            .toStream()
            .map((window, n) -> KeyValue.pair(window.key() + "@" + window.window().start(), Long.toString(n)))
            .to(prefix + "click-counts", Produced.with(s, s));

        clicks.leftJoin(users, (page, region) -> page + "|" + (region == null ? "?" : region), Joined.with(s, s, s))
            .to(prefix + "enriched", Produced.with(s, s));

        clicks.selectKey((user, page) -> page)
            .groupByKey(Grouped.with("by-page", s, s))
            .count(Materialized.as("page-counts-store"))
            .toStream()
            .mapValues(n -> Long.toString(n))
            .to(prefix + "page-counts", Produced.with(s, s));
        return builder.build();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6 && args.length != 7) {
            System.err.println(
                "usage: StreamsTopology <bootstrap> <applicationId> <topicPrefix> <stateDir> <replicationFactor> <commitIntervalMs> [processingGuarantee]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, args[4]);
        String guarantee = args.length == 7 ? args[6] : StreamsConfig.AT_LEAST_ONCE;
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
            // Streams' 10 s default would let the coordinator abort a transaction a long commit interval
            // keeps open on purpose (and Streams refuses a timeout below the interval); a restart with the
            // same state directory fences it at once anyway.
            long timeout = Math.max(60000L, Long.parseLong(args[5]));
            p.put(StreamsConfig.producerPrefix(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG), Long.toString(timeout));
        }
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        // The repartition topic is purged at a commit once this interval has passed.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args[5]);
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, "500");
        // The broker's minimum: a SIGKILLed instance's membership expires quickly, so the restart rebalances.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "6000");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "1000");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), "5");

        KafkaStreams streams = new KafkaStreams(build(args[2]), p);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            emit("STATE " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            emit("UNCAUGHT " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            done.countDown();
        }));
        streams.start();
        done.await();
        streams.close(Duration.ofSeconds(10));
    }
}
