import pytest

from rlog.pipeline.formats import PRESETS, FormatError, get_format

SAMPLES = {
    "hdfs": "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
    "bgl": "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL "
           "INFO instruction cache parity error corrected",
    "thunderbird": "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session opened "
                   "for user root by (uid=0)",
    "hadoop": "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
    "openstack": "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server "
                 "[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 - - -] 10.11.10.1 "
                 "\"GET /v2/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
    "linux": "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh",
    "apache": "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_presets_split_header_from_content(name):
    fmt = get_format(name)
    fields = fmt.match(SAMPLES[name])
    assert fields is not None, name
    content = fields["Content"]
    assert content and not content[0].isspace()
    assert fmt.timestamp(fields) is not None  # every preset above has a parseable time


def test_field_values():
    f = get_format("hdfs").match(SAMPLES["hdfs"])
    assert f["Level"] == "INFO" and f["Component"] == "dfs.DataNode$PacketResponder"
    assert f["Content"].startswith("PacketResponder 1 for block")
    bgl = get_format("BGL")
    fields = bgl.match(SAMPLES["bgl"])
    assert bgl.timestamp(fields) == 1117838570.0
    assert bgl.label(fields) is False
    assert bgl.label(bgl.match("K" + SAMPLES["bgl"][1:].replace("INFO", "FATAL"))) is True


def test_syslog_without_year_still_has_time_order():
    fmt = get_format("linux")
    a = fmt.timestamp(fmt.match("Jun 14 15:16:01 combo sshd[1]: x"))
    b = fmt.timestamp(fmt.match("Jun 14 15:16:02 combo sshd[1]: x"))
    assert b - a == 1.0
    assert fmt.timestamp(fmt.match("Feb 29 00:00:00 combo sshd[1]: x")) is not None


def test_custom_pattern_and_errors():
    fmt = get_format("<Date> <Time> <Level>: <Content>")
    assert fmt.name == "custom"
    assert fmt.match("2024-01-01 10:00:00 ERROR: disk /dev/sda failed")["Content"] == "disk /dev/sda failed"
    assert fmt.match("garbage") is None
    with pytest.raises(FormatError, match="no <Content>"):
        get_format("<Date> <Time>")
    with pytest.raises(FormatError, match="unknown log format"):
        get_format("not-a-format")
    with pytest.raises(FormatError, match="twice"):
        get_format("<A> <A> <Content>")


def test_unparseable_time_is_none_not_error():
    fmt = get_format("hdfs")
    fields = fmt.match("08X109 2036 148 INFO comp: message")
    assert fields is not None and fmt.timestamp(fields) is None


def test_all_presets_compile():
    assert {"raw", "hdfs", "bgl", "thunderbird", "hadoop", "openstack", "linux", "apache"} <= set(PRESETS)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e300", "-5", "32503680000"])  # 32503680000: year 3000
def test_absurd_epoch_times_read_as_no_time(value):
    fmt = get_format("hpc")
    fields = fmt.match(f"1 node-1 unix.hw state_change.unavailable {value} 1 Component State Change")
    assert fields is not None and fmt.timestamp(fields) is None
    ok = fmt.match("1 node-1 unix.hw state_change.unavailable 1131566461 1 Component State Change")
    assert fmt.timestamp(ok) == 1131566461.0
