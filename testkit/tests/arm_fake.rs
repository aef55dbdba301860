//! The fake ARM itself, over HTTP on 127.0.0.1: held to Azure's examples (unknown keys
//! refused, answers carrying the examples' fields), create/get/delete of each kind, the
//! async operation flow, the delete-option cascade, the write bucket, paging, each fault.
#![cfg(feature = "arm")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herd_testkit::arm::examples::{key_paths, Examples};
use herd_testkit::arm::skus::sku;
use herd_testkit::arm::{Bucket, Delivery, FakeArm, Faults, Kind, Limits, Lost, LostAnswer, Quota};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const API: &str = "api-version=2024-07-01";
const SUB: &str = "/subscriptions/sub-1";

struct Arm {
    fake: FakeArm,
    http: Client<HttpConnector, Full<Bytes>>,
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

async fn arm(faults: Faults) -> Arm {
    Arm {
        fake: FakeArm::start(faults).await,
        http: Client::builder(TokioExecutor::new()).build_http(),
    }
}

fn rg(g: &str) -> String {
    format!("{SUB}/resourcegroups/{g}")
}

fn res(g: &str, ty: &str, name: &str) -> String {
    format!("{SUB}/resourceGroups/{g}/providers/{ty}/{name}")
}

impl Arm {
    /// `target` is a path with or without a query; `?api-version` is added when absent.
    async fn raw(&self, method: &str, target: &str, body: Option<Value>, auth: Option<&str>) -> Answer {
        let url = if target.starts_with("http") {
            target.to_string()
        } else {
            let sep = if target.contains('?') { '&' } else { '?' };
            if target.contains("api-version") {
                format!("{}{target}", self.fake.uri())
            } else {
                format!("{}{target}{sep}{API}", self.fake.uri())
            }
        };
        let mut b = hyper::Request::builder().method(method).uri(url);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let bytes = body.map(|v| serde_json::to_vec(&v).unwrap()).unwrap_or_default();
        if !bytes.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let resp = self
            .http
            .request(b.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    async fn call(&self, method: &str, target: &str, body: Option<Value>) -> Answer {
        self.raw(method, target, body, Some("Bearer test-token")).await
    }

    /// Polls an `Azure-AsyncOperation` URL to its end; returns (InProgress answers, final).
    async fn wait(&self, a: &Answer) -> (u32, Value) {
        let url = a
            .header("azure-asyncoperation")
            .expect("an Azure-AsyncOperation header")
            .to_string();
        let mut n = 0;
        loop {
            let r = self.call("GET", &url, None).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            if r.body["status"] != "InProgress" {
                return (n, r.body);
            }
            n += 1;
        }
    }

    /// A group with a VNet (subnet `default`) and an NSG.
    async fn network(&self, g: &str) {
        assert_eq!(
            self.call(
                "PUT",
                &rg(g),
                Some(json!({"location": "eastus", "tags": {"herd": "1"}}))
            )
            .await
            .status,
            201
        );
        let v = self
            .call(
                "PUT",
                &res(g, "Microsoft.Network/virtualNetworks", "vnet"),
                Some(json!({"location": "eastus",
                "tags": {"herd": "1"},
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}})),
            )
            .await;
        assert_eq!(v.status, 201, "{:?}", v.body);
        let n = self
            .call("PUT", &res(g, "Microsoft.Network/networkSecurityGroups", "nsg"), Some(json!({"location": "eastus",
                "tags": {"herd": "1"},
                "properties": {"securityRules": [{"name": "ssh", "properties": {"protocol": "Tcp", "sourceAddressPrefix": "203.0.113.7/32",
                    "destinationAddressPrefix": "*", "access": "Allow", "destinationPortRange": "22", "sourcePortRange": "*",
                    "priority": 100, "direction": "Inbound"}}]}})))
            .await;
        assert_eq!(n.status, 201, "{:?}", n.body);
    }
}

/// A herd-like VM: inline NIC and public IP, delete options as given, Spot.
fn vm_body(g: &str, name: &str, delete: &str) -> Value {
    let subnet = format!(
        "{}/subnets/default",
        res(g, "Microsoft.Network/virtualNetworks", "vnet")
    );
    json!({
        "location": "eastus",
        "tags": {"herd-owner": "me", "herd-cluster": "c1"},
        "zones": ["1"],
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                "osDisk": {"name": format!("{name}-os"), "createOption": "FromImage", "caching": "ReadWrite",
                    "managedDisk": {"storageAccountType": "Premium_LRS"}, "deleteOption": delete}
            },
            "osProfile": {"computerName": name, "adminUsername": "herd", "customData": "IyEvYmluL3NoCg==",
                "linuxConfiguration": {"disablePasswordAuthentication": true,
                    "ssh": {"publicKeys": [{"path": "/home/herd/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAA"}]}}},
            "networkProfile": {
                "networkApiVersion": "2020-11-01",
                "networkInterfaceConfigurations": [{"name": format!("{name}-nic"), "properties": {
                    "primary": true, "deleteOption": delete,
                    "networkSecurityGroup": {"id": res(g, "Microsoft.Network/networkSecurityGroups", "nsg")},
                    "ipConfigurations": [{"name": "ipconfig1", "properties": {"primary": true, "subnet": {"id": subnet},
                        "publicIPAddressConfiguration": {"name": format!("{name}-ip"), "sku": {"name": "Standard"},
                            "properties": {"deleteOption": delete, "publicIPAllocationMethod": "Static"}}}}]}}]
            }
        }
    })
}

fn vm_path(g: &str, name: &str) -> String {
    res(g, "Microsoft.Compute/virtualMachines", name)
}

#[tokio::test]
async fn bodies_must_match_the_examples_and_calls_must_authenticate() {
    let a = arm(Faults::default()).await;
    a.network("rg").await;
    let mut bad = vm_body("rg", "vm1", "Delete");
    bad["properties"]["hardwareProfile"]["vmSise"] = json!("x");
    let r = a.call("PUT", &vm_path("rg", "vm1"), Some(bad)).await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"));
    assert!(
        r.message().contains("properties.hardwareProfile.vmSise"),
        "{}",
        r.message()
    );
    let r = a
        .call(
            "PUT",
            &res("rg", "Microsoft.Network/publicIPAddresses", "ip"),
            Some(json!({"location": "eastus", "properties": {"dnsSettingz": {}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"));
    assert!(a.fake.vms().is_empty() && a.fake.public_ips().is_empty());

    let r = a.raw("GET", &rg("rg"), None, None).await;
    assert_eq!((r.status, r.code()), (401, "AuthenticationFailed"));
    let r = a.raw("GET", &rg("rg"), None, Some("Bearer ")).await;
    assert_eq!(r.status, 401);
    let r = a
        .raw("GET", &format!("{}{}", a.fake.uri(), rg("rg")), None, Some("Bearer t"))
        .await;
    assert_eq!((r.status, r.code()), (400, "MissingApiVersionParameter"));
    // Paths are case-insensitive; any api-version will do.
    let r = a
        .call(
            "GET",
            &format!("{}?api-version=2099-01-01", rg("RG").to_uppercase()),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(a
        .fake
        .requests()
        .iter()
        .all(|q| !q.headers.contains_key("authorization")));
    assert!(a.fake.requests().iter().any(|q| q.status == 401));
}

/// Every field of the examples' answers is in the fake's, for a resource made from the
/// example's own request body.
#[tokio::test]
async fn answers_carry_the_fields_of_azure_examples() {
    let ex = Examples::load().unwrap();
    let a = arm(Faults::default()).await;
    let body = |f: &str| -> Value { ex.file(f).unwrap().pointer("/parameters/parameters").unwrap().clone() };
    let answer = |f: &str, code: &str| -> BTreeSet<String> {
        key_paths(ex.file(f).unwrap().pointer(&format!("/responses/{code}/body")).unwrap())
    };
    let check = |name: &str, want: BTreeSet<String>, got: &Value, except: &[&str]| {
        let have = key_paths(got);
        let missing: Vec<&String> = want
            .iter()
            .filter(|p| !have.contains(*p) && !except.iter().any(|e| p.starts_with(e)))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: the fake's answer lacks {missing:?}\n{got:#}"
        );
    };
    let g = a
        .call("PUT", &rg("rg1"), Some(body("ResourceGroup_Create.2025-04-01.json")))
        .await;
    assert_eq!(g.status, 201);
    check(
        "resource group",
        answer("ResourceGroup_Create.2025-04-01.json", "201"),
        &g.body,
        &[],
    );
    let g = a.call("GET", &rg("rg1"), None).await;
    check(
        "resource group get",
        answer("ResourceGroup_Get.2025-04-01.json", "200"),
        &g.body,
        &[],
    );

    // The NIC example refers to rg1-vnet/default and the public IP test-ip.
    let mut vnet = body("VirtualNetwork_Create_WithSubnet.2025-03-01.json");
    vnet["properties"]["subnets"][0]["name"] = json!("default");
    let v = a
        .call(
            "PUT",
            &res("rg1", "Microsoft.Network/virtualNetworks", "rg1-vnet"),
            Some(vnet),
        )
        .await;
    assert_eq!(v.status, 201, "{:?}", v.body);
    check(
        "vnet",
        answer("VirtualNetwork_Create_WithSubnet.2025-03-01.json", "201"),
        &v.body,
        &[],
    );
    let p = a
        .call(
            "PUT",
            &res("rg1", "Microsoft.Network/publicIPAddresses", "test-ip"),
            Some(body("PublicIpAddress_Create_Defaults.2025-03-01.json")),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    let mut nic = body("NetworkInterface_Create.2025-03-01.json");
    let text = nic
        .to_string()
        .replace("/subscriptions/subid/", "/subscriptions/sub-1/");
    nic = serde_json::from_str(&text).unwrap();
    let n = a
        .call(
            "PUT",
            &res("rg1", "Microsoft.Network/networkInterfaces", "test-nic"),
            Some(nic),
        )
        .await;
    assert_eq!(n.status, 201, "{:?}", n.body);
    check(
        "nic",
        answer("NetworkInterface_Create.2025-03-01.json", "201"),
        &n.body,
        &[],
    );
    // Attached now, the public IP shows its ipConfiguration as in the example.
    let p = a
        .call(
            "GET",
            &res("rg1", "Microsoft.Network/publicIPAddresses", "test-ip"),
            None,
        )
        .await;
    check(
        "public ip",
        answer("PublicIpAddress_Create_Defaults.2025-03-01.json", "201"),
        &p.body,
        &[],
    );
    let s = a
        .call(
            "PUT",
            &res("rg1", "Microsoft.Network/networkSecurityGroups", "testnsg"),
            Some(body("NetworkSecurityGroup_Create_WithRule.2025-03-01.json")),
        )
        .await;
    assert_eq!(s.status, 201, "{:?}", s.body);
    check(
        "nsg",
        answer("NetworkSecurityGroup_Create_WithRule.2025-03-01.json", "201"),
        &s.body,
        &[],
    );

    // The SSH example attaches an existing NIC; the other creates NIC and IP inline (the
    // fake needs a subnet there, as Azure does; it is Linux-only).
    let mut ssh = body("VirtualMachine_Create_WithSshAuthentication.json");
    let nic_id = ssh
        .pointer("/properties/networkProfile/networkInterfaces/0/id")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    // The example's NIC is a placeholder (`{existing-nic-name}`).
    assert!(nic_id.contains("/networkInterfaces/"), "{nic_id}");
    let nic_name = "existing-nic".to_string();
    let ipc = json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
        "subnet": {"id": format!("{}/subnets/default", res("myResourceGroup", "Microsoft.Network/virtualNetworks", "v"))}}}]}});
    a.call("PUT", &rg("myResourceGroup"), Some(json!({"location": "westus"})))
        .await;
    a.call("PUT", &res("myResourceGroup", "Microsoft.Network/virtualNetworks", "v"), Some(json!({"location": "westus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}))).await;
    let r = a
        .call(
            "PUT",
            &res("myResourceGroup", "Microsoft.Network/networkInterfaces", &nic_name),
            Some(ipc),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    ssh["properties"]["networkProfile"]["networkInterfaces"][0]["id"] =
        json!(res("myResourceGroup", "Microsoft.Network/networkInterfaces", &nic_name));
    let vm = a.call("PUT", &vm_path("myResourceGroup", "myVM"), Some(ssh)).await;
    assert_eq!(vm.status, 201, "{:?}", vm.body);
    check(
        "vm (ssh)",
        answer("VirtualMachine_Create_WithSshAuthentication.json", "200"),
        &vm.body,
        &[],
    );
    let mut inline = body("VirtualMachine_Create_WithNetworkInterfaceConfiguration.2025-04-01.json");
    let cfg = &mut inline["properties"]["networkProfile"]["networkInterfaceConfigurations"][0];
    cfg["name"] = json!("inline-nic");
    cfg["properties"]["ipConfigurations"][0]["name"] = json!("ipconfig1");
    cfg["properties"]["ipConfigurations"][0]["properties"]["subnet"] =
        json!({"id": format!("{}/subnets/default", res("myResourceGroup", "Microsoft.Network/virtualNetworks", "v"))});
    cfg["properties"]["ipConfigurations"][0]["properties"]["publicIPAddressConfiguration"]["name"] = json!("inline-ip");
    let vm = a.call("PUT", &vm_path("myResourceGroup", "myVM2"), Some(inline)).await;
    assert_eq!(vm.status, 201, "{:?}", vm.body);
    check(
        "vm (inline)",
        answer(
            "VirtualMachine_Create_WithNetworkInterfaceConfiguration.2025-04-01.json",
            "201",
        ),
        &vm.body,
        &["properties.osProfile.windowsConfiguration"],
    );
    assert!(a.fake.get(Kind::Nic, "myResourceGroup", "inline-nic").is_some());
    assert!(a.fake.get(Kind::PublicIp, "myresourcegroup", "INLINE-IP").is_some());
    let iv = a
        .call(
            "GET",
            &format!("{}/instanceView", vm_path("myResourceGroup", "myVM2")),
            None,
        )
        .await;
    check(
        "instance view",
        answer("VirtualMachine_Get_InstanceView.json", "200"),
        &iv.body,
        &[
            "bootDiagnostics",
            "patchStatus",
            "vmAgent.extensionHandlers[].",
            "extensions[].",
        ],
    );
    let list = a
        .call(
            "GET",
            &format!("{SUB}/providers/Microsoft.Compute/virtualMachines"),
            None,
        )
        .await;
    check(
        "list all",
        answer("VirtualMachine_ListAll_MinimumSet_Gen.json", "200"),
        &list.body,
        &[],
    );
    let list = a
        .call(
            "GET",
            &format!("{SUB}/resourceGroups/myResourceGroup/providers/Microsoft.Compute/virtualMachines"),
            None,
        )
        .await;
    check(
        "list",
        answer("VirtualMachine_List_MinimumSet_Gen.json", "200"),
        &list.body,
        &[],
    );
}

#[tokio::test]
async fn a_vm_is_created_through_an_async_operation_and_converges_on_a_resend() {
    let a = arm(Faults {
        polls_in_progress: 2,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Delete")))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    assert!(r.header("location").is_some());
    assert!(r.header("x-ms-ratelimit-remaining-subscription-writes").is_some());
    assert!(
        r.body["properties"]["osProfile"].get("customData").is_none(),
        "secrets never come back"
    );
    // A re-sent PUT (same name) joins the same VM: 200, one VM, one NIC.
    let again = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Delete")))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        (a.fake.vms().len(), a.fake.nics().len(), a.fake.public_ips().len()),
        (1, 1, 1)
    );
    let (in_progress, end) = a.wait(&r).await;
    assert!(in_progress >= 1, "{in_progress}");
    assert_eq!(end["status"], "Succeeded");
    let vm = a
        .call(
            "GET",
            &format!("{}?$expand=instanceView&{API}", vm_path("rg", "vm1")),
            None,
        )
        .await;
    assert_eq!(vm.body["properties"]["provisioningState"], "Succeeded");
    let codes: Vec<&str> = vm.body["properties"]["instanceView"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ProvisioningState/succeeded", "PowerState/running"]);
    // The Location URL answers the resource once done.
    let loc = a.call("GET", r.header("location").unwrap(), None).await;
    assert_eq!((loc.status, loc.body["name"].as_str()), (200, Some("vm1")));
    // Disk, NIC and IP exist, tagged, with the VM's delete options and Spot settings asked.
    let disk = &a.fake.disks()[0];
    assert_eq!(disk["managedBy"], vm.body["id"]);
    assert_eq!(disk["tags"]["herd-cluster"], "c1");
    assert_eq!(a.fake.nics()[0]["tags"]["herd-owner"], "me");
    assert!(a.fake.public_ips()[0]["properties"]["ipAddress"].is_string());
    let sent = a
        .fake
        .requests()
        .into_iter()
        .find(|q| q.method == "PUT" && q.path.ends_with("vm1"))
        .unwrap();
    assert_eq!(sent.body["properties"]["billingProfile"]["maxPrice"], -1);
    // Power actions.
    let off = a
        .call("POST", &format!("{}/deallocate", vm_path("rg", "vm1")), None)
        .await;
    assert_eq!(off.status, 202);
    a.wait(&off).await;
    let iv = a.fake.instance_view("rg", "vm1").unwrap();
    assert_eq!(iv["statuses"][1]["code"], "PowerState/deallocated");
    assert_eq!(a.fake.calls().by["POST virtualMachines/deallocate"], 1);
}

#[tokio::test]
async fn deleting_a_vm_takes_what_its_delete_options_say() {
    let a = arm(Faults {
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    for (name, opt) in [("gone", "Delete"), ("kept", "Detach")] {
        let r = a
            .call("PUT", &vm_path("rg", name), Some(vm_body("rg", name, opt)))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        a.wait(&r).await;
    }
    assert_eq!(
        (a.fake.disks().len(), a.fake.nics().len(), a.fake.public_ips().len()),
        (2, 2, 2)
    );
    // A NIC in use cannot go first.
    let r = a
        .call(
            "DELETE",
            &res("rg", "Microsoft.Network/networkInterfaces", "gone-nic"),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "NicInUse"));
    for name in ["gone", "kept"] {
        let r = a
            .call(
                "DELETE",
                &format!("{}?forceDeletion=true&{API}", vm_path("rg", name)),
                None,
            )
            .await;
        assert_eq!(r.status, 202);
        let busy = a
            .call("PUT", &vm_path("rg", name), Some(vm_body("rg", name, "Delete")))
            .await;
        assert_eq!((busy.status, busy.code()), (409, "AnotherOperationInProgress"));
        let (_, end) = a.wait(&r).await;
        assert_eq!(end["status"], "Succeeded");
    }
    assert!(a.fake.vms().is_empty());
    let names = |v: Vec<Value>| {
        v.iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(a.fake.disks()), ["kept-os"]);
    assert_eq!(names(a.fake.nics()), ["kept-nic"]);
    assert_eq!(names(a.fake.public_ips()), ["kept-ip"]);
    assert!(a.fake.disks()[0].get("managedBy").is_none(), "an orphan");
    assert!(a.fake.nics()[0]["properties"].get("virtualMachine").is_none());
    // Orphans are listed and deleted like any resource.
    let disks = a
        .call("GET", &format!("{SUB}/providers/Microsoft.Compute/disks"), None)
        .await;
    assert_eq!(disks.body["value"][0]["properties"]["diskState"], "Unattached");
    let d = a
        .call("DELETE", &res("rg", "Microsoft.Compute/disks", "kept-os"), None)
        .await;
    assert_eq!(d.status, 202);
    a.wait(&d).await;
    assert!(a.fake.disks().is_empty());
    let d = a
        .call(
            "DELETE",
            &res("rg", "Microsoft.Network/networkInterfaces", "kept-nic"),
            None,
        )
        .await;
    a.wait(&d).await;
    assert!(a.fake.nics().is_empty());
    assert!(
        a.fake.public_ips()[0]["properties"].get("ipConfiguration").is_none(),
        "its NIC gone, the IP is free"
    );
    let gone = a.call("GET", &vm_path("rg", "gone"), None).await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceNotFound"));
    // Deleting what is gone is 204.
    assert_eq!(a.call("DELETE", &vm_path("rg", "gone"), None).await.status, 204);
}

#[tokio::test]
async fn each_network_kind_is_created_read_listed_and_deleted() {
    let a = arm(Faults {
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let ip = res("rg", "Microsoft.Network/publicIPAddresses", "ip1");
    let r = a
        .call(
            "PUT",
            &ip,
            Some(json!({"location": "eastus", "tags": {"herd": "1"}, "sku": {"name": "Standard"}})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.header("azure-asyncoperation").is_some());
    assert_eq!(
        a.call("PUT", &ip, Some(json!({"location": "eastus", "tags": {"herd": "2"}})))
            .await
            .status,
        200
    );
    assert_eq!(a.fake.public_ips()[0]["tags"]["herd"], "2");
    let nic = res("rg", "Microsoft.Network/networkInterfaces", "nic1");
    let subnet = format!(
        "{}/subnets/default",
        res("rg", "Microsoft.Network/virtualNetworks", "vnet")
    );
    let bad = a
        .call(
            "PUT",
            &nic,
            Some(
                json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "c",
            "properties": {"subnet": {"id": format!("{subnet}x")}}}]}}),
            ),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidResourceReference"));
    let r = a
        .call(
            "PUT",
            &nic,
            Some(
                json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "c",
            "properties": {"subnet": {"id": subnet}, "publicIPAddress": {"id": ip}}}]}}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    for ty in [
        "virtualNetworks",
        "networkSecurityGroups",
        "publicIPAddresses",
        "networkInterfaces",
    ] {
        let g = a
            .call(
                "GET",
                &format!("{SUB}/resourceGroups/rg/providers/Microsoft.Network/{ty}"),
                None,
            )
            .await;
        let s = a
            .call("GET", &format!("{SUB}/providers/Microsoft.Network/{ty}"), None)
            .await;
        assert_eq!(g.body["value"].as_array().unwrap().len(), 1, "{ty}");
        assert_eq!(s.body["value"], g.body["value"], "{ty}");
    }
    // An attached IP and a used subnet cannot be deleted; in order, everything goes.
    assert_eq!(a.call("DELETE", &ip, None).await.code(), "PublicIPAddressInUse");
    assert_eq!(
        a.call("DELETE", &res("rg", "Microsoft.Network/virtualNetworks", "vnet"), None)
            .await
            .code(),
        "InUseSubnetCannotBeDeleted"
    );
    for p in [
        nic.clone(),
        ip.clone(),
        res("rg", "Microsoft.Network/virtualNetworks", "vnet"),
        res("rg", "Microsoft.Network/networkSecurityGroups", "nsg"),
    ] {
        let d = a.call("DELETE", &p, None).await;
        assert_eq!(d.status, 202, "{p}: {:?}", d.body);
        a.wait(&d).await;
        assert_eq!(a.call("GET", &p, None).await.status, 404, "{p}");
    }
    assert!(
        a.fake.nics().is_empty()
            && a.fake.public_ips().is_empty()
            && a.fake.vnets().is_empty()
            && a.fake.nsgs().is_empty()
    );
}

#[tokio::test]
async fn resource_groups_are_listed_by_tag_and_deleted_with_all_in_them() {
    let a = arm(Faults {
        rg_delete_time: Duration::from_millis(1000),
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    a.call(
        "PUT",
        &rg("other"),
        Some(json!({"location": "eastus", "tags": {"team": "x"}})),
    )
    .await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
        .await;
    a.wait(&r).await;
    let filter = "%24filter=tagName%20eq%20%27herd%27%20and%20tagValue%20eq%20%271%27";
    let l = a
        .call("GET", &format!("{SUB}/resourcegroups?{filter}&{API}"), None)
        .await;
    assert_eq!(l.body["value"].as_array().unwrap().len(), 1, "{:?}", l.body);
    assert_eq!(l.body["value"][0]["name"], "rg");
    assert_eq!(a.call("HEAD", &rg("rg"), None).await.status, 204);
    assert_eq!(a.call("HEAD", &rg("nope"), None).await.status, 404);
    let moved = a.call("PUT", &rg("rg"), Some(json!({"location": "westus"}))).await;
    assert_eq!((moved.status, moved.code()), (409, "InvalidResourceGroupLocation"));

    let d = a
        .call(
            "DELETE",
            &format!(
                "{}?forceDeletionTypes=Microsoft.Compute/virtualMachines&{API}",
                rg("rg")
            ),
            None,
        )
        .await;
    assert_eq!(d.status, 202);
    let loc = d.header("location").unwrap().to_string();
    assert!(loc.contains("/operationresults/"), "{loc}");
    assert_eq!(
        a.call("GET", &rg("rg"), None).await.body["properties"]["provisioningState"],
        "Deleting"
    );
    let put = a
        .call(
            "PUT",
            &res("rg", "Microsoft.Network/publicIPAddresses", "ip"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!((put.status, put.code()), (409, "ResourceGroupBeingDeleted"));
    assert_eq!(a.call("GET", &loc, None).await.status, 202);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(a.call("GET", &loc, None).await.status, 200);
    assert_eq!(a.call("GET", &rg("rg"), None).await.code(), "ResourceGroupNotFound");
    assert!(
        a.fake.vms().is_empty() && a.fake.disks().is_empty() && a.fake.nics().is_empty() && a.fake.vnets().is_empty()
    );
    assert_eq!(a.fake.resource_groups().len(), 1);
}

#[tokio::test]
async fn the_write_bucket_allows_a_burst_of_200_then_429_with_retry_after() {
    // A slow refill (one token per 5 s), so the burst is what the test sees.
    let slow = Limits {
        writes: Bucket {
            burst: 200,
            per_second: 0.2,
        },
        ..Limits::default()
    };
    let a = arm(Faults {
        limits: slow,
        ..Faults::default()
    })
    .await;
    for i in 0..200 {
        let r = a
            .call("PUT", &rg(&format!("g{i}")), Some(json!({"location": "eastus"})))
            .await;
        assert_eq!(r.status, 201, "call {i}: {:?}", r.body);
    }
    let r = a.call("PUT", &rg("g200"), Some(json!({"location": "eastus"}))).await;
    assert_eq!((r.status, r.code()), (429, "SubscriptionRequestsThrottled"));
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    assert_eq!(r.header("x-ms-ratelimit-remaining-subscription-writes"), Some("0"));
    // Deletes share the writes bucket (unless Limits::deletes); reads have their own.
    assert_eq!(a.call("DELETE", &rg("g0"), None).await.status, 429);
    assert_eq!(a.call("GET", &rg("g0"), None).await.status, 200);
    let c = a.fake.calls();
    assert_eq!((c.writes, c.deletes, c.reads, c.throttled), (201, 1, 1, 2));
    assert_eq!(c.by["PUT resourceGroups"], 201);
    // The default refill, 10 per second: after 1 s about 10 writes pass.
    a.fake.set_faults(Faults::default());
    let mut ok = 0;
    let t = Instant::now();
    for i in 0..215 {
        if a.call("PUT", &rg(&format!("h{i}")), Some(json!({"location": "eastus"})))
            .await
            .status
            == 201
        {
            ok += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut later = 0;
    for i in 0..15 {
        if a.call("PUT", &rg(&format!("k{i}")), Some(json!({"location": "eastus"})))
            .await
            .status
            == 201
        {
            later += 1;
        }
    }
    let slack = (t.elapsed().as_secs_f64() * 10.0).ceil() as u32;
    assert!(
        ok >= 200 && ok + later <= 200 + slack && later >= 10,
        "{ok} then {later} (slack {slack})"
    );
    assert_eq!(Limits::floor(Limits::default().writes, 1000), Duration::from_secs(80));
}

#[tokio::test]
async fn lists_page_with_next_link() {
    let a = arm(Faults {
        page_size: 3,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    for i in 0..7 {
        let r = a
            .call(
                "PUT",
                &vm_path("rg", &format!("vm{i}")),
                Some(vm_body("rg", &format!("vm{i}"), "Delete")),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut url = format!("{SUB}/providers/Microsoft.Compute/virtualMachines?statusOnly=true&{API}");
    let mut names = BTreeSet::new();
    let mut pages = 0;
    loop {
        let r = a.call("GET", &url, None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        pages += 1;
        for v in r.body["value"].as_array().unwrap() {
            assert!(
                v["properties"]["instanceView"]["statuses"].is_array(),
                "statusOnly gives instance views"
            );
            names.insert(v["name"].as_str().unwrap().to_string());
        }
        match r.body["nextLink"].as_str() {
            Some(n) => {
                assert!(n.contains("api-version=") && n.contains("statusOnly=true"), "{n}");
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!((pages, names.len()), (3, 7));
}

#[tokio::test]
async fn capacity_and_quota_errors_arrive_in_the_operation_or_at_once() {
    let quota = Quota {
        family: "standardDSv5Family".into(),
        sizes: vec!["Standard_D2s_v5".into()],
        vcpus_per_vm: 2,
        limit: 6,
        usage: 2,
    };
    let a = arm(Faults {
        zonal_allocation_failed: vec![("eastus".into(), "1".into())],
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Delete")))
        .await;
    assert_eq!(r.status, 201);
    let (_, end) = a.wait(&r).await;
    assert_eq!(
        (end["status"].as_str(), end["error"]["code"].as_str()),
        (Some("Failed"), Some("ZonalAllocationFailed"))
    );
    let vm = a.fake.get(Kind::Vm, "rg", "vm1").unwrap();
    assert_eq!(vm["properties"]["provisioningState"], "Failed");
    assert_eq!(
        a.fake.instance_view("rg", "vm1").unwrap()["statuses"][0]["code"],
        "ProvisioningState/failed/ZonalAllocationFailed"
    );
    assert!(a.fake.disks().is_empty(), "no disk for a VM never allocated");
    // Zone 2 works; a re-PUT of the failed VM there retries it.
    let mut z2 = vm_body("rg", "vm1", "Delete");
    z2["zones"] = json!(["2"]);
    let r = a.call("PUT", &vm_path("rg", "vm1"), Some(z2)).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.wait(&r).await.1["status"], "Succeeded");

    a.fake.set_faults(Faults {
        allocation_failed: vec!["eastus".into()],
        delivery: Delivery::Sync,
        polls_in_progress: 0,
        ..Faults::default()
    });
    let r = a
        .call("PUT", &vm_path("rg", "vm2"), Some(vm_body("rg", "vm2", "Delete")))
        .await;
    assert_eq!((r.status, r.code()), (409, "AllocationFailed"));
    assert!(a.fake.get(Kind::Vm, "rg", "vm2").is_none() && a.fake.get(Kind::Nic, "rg", "vm2-nic").is_none());

    a.fake.set_faults(Faults {
        sku_not_available: vec![("EastUS".into(), "standard_d2s_v5".into())],
        ..Faults::default()
    });
    let r = a
        .call("PUT", &vm_path("rg", "vm2"), Some(vm_body("rg", "vm2", "Delete")))
        .await;
    assert_eq!((r.status, r.code()), (409, "SkuNotAvailable"));
    assert!(
        r.message().contains("not available in location 'eastus'"),
        "{}",
        r.message()
    );

    // vm1 uses 2 cores: usage 2 + 2 = 4, limit 6: one more fits, then quota.
    a.fake.set_faults(Faults {
        quota: Some(quota.clone()),
        delivery: Delivery::Sync,
        polls_in_progress: 0,
        ..Faults::default()
    });
    assert_eq!(
        a.call("PUT", &vm_path("rg", "vm2"), Some(vm_body("rg", "vm2", "Delete")))
            .await
            .status,
        201
    );
    let r = a
        .call("PUT", &vm_path("rg", "vm3"), Some(vm_body("rg", "vm3", "Delete")))
        .await;
    assert_eq!((r.status, r.code()), (409, "OperationNotAllowed"));
    assert!(
        r.message()
            .contains("exceeding approved standardDSv5Family Cores quota")
            && r.message()
                .contains("Current Limit: 6, Current Usage: 6, Additional Required: 2"),
        "{}",
        r.message()
    );
    a.fake.set_faults(Faults {
        quota: Some(quota),
        polls_in_progress: 0,
        ..Faults::default()
    });
    let r = a
        .call("PUT", &vm_path("rg", "vm3"), Some(vm_body("rg", "vm3", "Delete")))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(a.wait(&r).await.1["error"]["code"], "OperationNotAllowed");
}

#[tokio::test]
async fn storms_lost_answers_and_reserved_nics() {
    let a = arm(Faults {
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    a.fake.set_faults(Faults {
        throttle_storm: 3,
        storm_retry_after: 2,
        polls_in_progress: 0,
        ..Faults::default()
    });
    for _ in 0..3 {
        let r = a
            .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
            .await;
        assert_eq!(
            (r.status, r.code(), r.header("retry-after")),
            (429, "TooManyRequests", Some("2"))
        );
    }
    assert!(a.fake.vms().is_empty());
    assert_eq!(a.call("GET", &rg("rg"), None).await.status, 200, "storms are on writes");
    // A lost answer: the VM exists, the caller got a 500.
    a.fake.set_faults(Faults {
        lost: vec![Lost {
            method: "PUT".into(),
            kind: "virtualMachines".into(),
            times: 1,
            answer: LostAnswer::Status500,
        }],
        nic_reserved_for: Duration::from_millis(1500),
        polls_in_progress: 0,
        ..Faults::default()
    });
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
        .await;
    assert_eq!((r.status, r.code()), (500, "InternalServerError"));
    assert_eq!(a.fake.vms().len(), 1);
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
        .await;
    assert_eq!(r.status, 200, "the re-sent PUT converges");
    a.wait(&r).await;
    // Delete with Detach: the NIC stays, reserved for a while.
    let d = a.call("DELETE", &vm_path("rg", "vm1"), None).await;
    a.wait(&d).await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
        .await;
    assert_eq!((r.status, r.code()), (400, "NicReservedForAnotherVm"));
    assert!(
        r.message().contains("Reserved VM: /subscriptions/sub-1/"),
        "{}",
        r.message()
    );
    tokio::time::sleep(Duration::from_millis(1550)).await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Detach")))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A hung answer: the effect happens, the answer comes too late.
    a.fake.set_faults(Faults {
        lost: vec![Lost {
            method: "PUT".into(),
            kind: String::new(),
            times: 1,
            answer: LostAnswer::Hang(Duration::from_millis(400)),
        }],
        ..Faults::default()
    });
    let t = Instant::now();
    let r = a
        .call(
            "PUT",
            &res("rg", "Microsoft.Network/publicIPAddresses", "late"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(t.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn names_filters_plants_and_a_hostile_list() {
    let a = arm(Faults::default()).await;
    a.network("rg").await;
    for (name, code) in [
        (&"a".repeat(65)[..], "InvalidParameter"),
        ("_vm", "InvalidParameter"),
        ("vm-", "InvalidParameter"),
    ] {
        let r = a
            .call("PUT", &vm_path("rg", name), Some(vm_body("rg", "x", "Delete")))
            .await;
        assert_eq!((r.status, r.code()), (400, code), "{name}");
    }
    let r = a
        .call(
            "PUT",
            &res("rg", "Microsoft.Network/publicIPAddresses", "-ip"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceName"));
    let r = a.call("PUT", &rg("bad.rg."), Some(json!({"location": "eastus"}))).await;
    assert_eq!(r.status, 400);
    let r = a.call("PUT", &rg("nope/x"), Some(json!({"location": "eastus"}))).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "not a route");
    let r = a
        .call(
            "PUT",
            &vm_path("missing", "vm"),
            Some(vm_body("missing", "vm", "Delete")),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "ResourceGroupNotFound"));

    a.fake.plant(
        Kind::Disk,
        "foreign",
        "orphan-disk",
        json!({"location": "eastus", "tags": {"herd-owner": "me"}}),
    );
    a.fake.plant(
        Kind::PublicIp,
        "foreign",
        "their-ip",
        json!({"location": "eastus", "tags": {"team": "x"}}),
    );
    let filter = "%24filter=tagName%20eq%20%27herd-owner%27";
    let l = a.call("GET", &format!("{SUB}/resources?{filter}&{API}"), None).await;
    let names: Vec<&str> = l.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orphan-disk"]);
    let bad = a
        .call(
            "GET",
            &format!("{SUB}/resourcegroups?%24filter=startswith(name,%27h%27)&{API}"),
            None,
        )
        .await;
    assert_eq!(bad.status, 400);
    a.fake.set_faults(Faults {
        ignore_filters: true,
        ..Faults::default()
    });
    let l = a
        .call(
            "GET",
            &format!("{SUB}/resourcegroups?%24filter=tagName%20eq%20%27nothing%27&{API}"),
            None,
        )
        .await;
    assert_eq!(
        l.body["value"].as_array().unwrap().len(),
        2,
        "filters ignored: rg and foreign"
    );
    a.fake.set_deleting("foreign", Duration::from_millis(500));
    let r = a
        .call(
            "PUT",
            &res("foreign", "Microsoft.Network/publicIPAddresses", "x"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(r.code(), "ResourceGroupBeingDeleted");
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(a.fake.disks().is_empty() && a.fake.public_ips().is_empty());
    let _ = Bucket {
        burst: 1,
        per_second: 1.0,
    };
}

#[tokio::test]
async fn scheduled_deletes_end_a_vm_at_its_deadline() {
    let a = arm(Faults {
        polls_in_progress: 0,
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Delete")))
        .await;
    a.wait(&r).await;
    let id = a.fake.vms()[0]["id"].as_str().unwrap().to_string();
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1000);
    let url = format!(
        "{SUB}/providers/Microsoft.ComputeSchedule/locations/eastus/virtualMachinesSubmitDelete?api-version=2025-05-01"
    );
    let bad = a
        .call(
            "POST",
            &url,
            Some(
                json!({"schedule": {"deadline": at.to_rfc3339(), "deadlineType": "InitiateAt", "whenever": 1},
            "executionParameters": {}, "resources": {"ids": [id]}}),
            ),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidRequestContent"));
    assert!(bad.message().contains("schedule.whenever"), "{}", bad.message());
    let r = a
        .call(
            "POST",
            &url,
            Some(
                json!({"schedule": {"deadline": at.to_rfc3339(), "timezone": "UTC", "deadlineType": "InitiateAt"},
            "executionParameters": {"retryPolicy": {"retryCount": 3, "retryWindowInMinutes": 30}},
            "resources": {"ids": [id]}, "correlationid": "c-1", "forceDeletion": true}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Shaped after Azure's example answer, but for what only failures and ends carry.
    let ex = Examples::load().unwrap();
    let want = key_paths(
        ex.file("ComputeSchedule_VirtualMachinesSubmitDelete_MaximumSet_Gen.2025-05-01.json")
            .unwrap()
            .pointer("/responses/200/body")
            .unwrap(),
    );
    let have = key_paths(&r.body);
    let later = [
        "results[].errorCode",
        "results[].errorDetails",
        "results[].operation.resourceOperationError",
        "results[].operation.completedAt",
        "results[].operation.timeZone",
    ];
    let missing: Vec<&String> = want
        .iter()
        .filter(|p| !have.contains(*p) && !later.iter().any(|l| p.starts_with(l)))
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    let op = r.body["results"][0]["operation"]["operationId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.body["results"][0]["operation"]["state"], "Scheduled");
    let status_url = url.replace("virtualMachinesSubmitDelete", "virtualMachinesGetOperationStatus");
    let st = a
        .call(
            "POST",
            &status_url,
            Some(json!({"operationIds": [op], "correlationid": "c-2"})),
        )
        .await;
    assert_eq!(st.body["results"][0]["operation"]["state"], "Scheduled");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let st = a.call("POST", &status_url, Some(json!({"operationIds": [op]}))).await;
    assert_eq!(st.body["results"][0]["operation"]["state"], "Succeeded");
    assert!(st.body["results"][0]["operation"]["completedAt"].is_string());
    assert!(
        a.fake.vms().is_empty()
            && a.fake.disks().is_empty()
            && a.fake.nics().is_empty()
            && a.fake.public_ips().is_empty()
    );
    a.fake.set_faults(Faults {
        compute_schedule: false,
        ..Faults::default()
    });
    let r = a.call("POST", &status_url, Some(json!({"operationIds": [op]}))).await;
    assert_eq!((r.status, r.code()), (409, "MissingSubscriptionRegistration"));
}

/// The 0.21 SDK writes some unset fields as null: they are not sent keys, and ARM keeps
/// no nulls.
#[tokio::test]
async fn nulls_are_absent_fields() {
    let a = arm(Faults::default()).await;
    a.network("rg").await;
    let mut b = vm_body("rg", "vm1", "Delete");
    b["properties"]["timeCreated"] = Value::Null;
    b["properties"]["licenseTypo"] = Value::Null;
    let r = a.call("PUT", &vm_path("rg", "vm1"), Some(b)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["properties"].get("licenseTypo").is_none());
    assert!(r.body["properties"]["timeCreated"].is_string());
    let sent = a.fake.requests().into_iter().rfind(|q| q.method == "PUT").unwrap();
    assert!(
        sent.body["properties"]["licenseTypo"].is_null() && sent.body["properties"].get("licenseTypo").is_some(),
        "recorded as sent"
    );
}

#[tokio::test]
async fn a_vm_identity_gets_a_role_on_its_group() {
    let a = arm(Faults {
        polls_in_progress: 0,
        principal_delay: Duration::from_millis(1000),
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let mut b = vm_body("rg", "vm1", "Delete");
    b["identity"] = json!({"type": "SystemAssigned"});
    let r = a.call("PUT", &vm_path("rg", "vm1"), Some(b)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let principal = r.body["identity"]["principalId"].as_str().unwrap().to_string();
    let role =
        "/subscriptions/sub-1/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c";
    let ra = |n: &str| res("rg", "Microsoft.Authorization/roleAssignments", n);
    let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal"}});
    let g1 = "0b3b6a3e-1d7e-4c5a-9a43-5f0c3e9d2a11";
    let early = a.call("PUT", &ra(g1), Some(body.clone())).await;
    assert_eq!(
        (early.status, early.code()),
        (400, "PrincipalNotFound"),
        "replication delay"
    );
    tokio::time::sleep(Duration::from_millis(1020)).await;
    let ok = a.call("PUT", &ra(g1), Some(body.clone())).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert_eq!(ok.body["properties"]["scope"], "/subscriptions/sub-1/resourceGroups/rg");
    assert_eq!(
        a.call("PUT", &ra(g1), Some(body.clone())).await.status,
        200,
        "the same name converges"
    );
    let twice = a
        .call("PUT", &ra("1b3b6a3e-1d7e-4c5a-9a43-5f0c3e9d2a11"), Some(body.clone()))
        .await;
    assert_eq!((twice.status, twice.code()), (409, "RoleAssignmentExists"));
    assert_eq!(a.call("PUT", &ra("not-a-guid"), Some(body.clone())).await.status, 400);
    let stranger =
        json!({"properties": {"roleDefinitionId": role, "principalId": "ffffffff-0000-0000-0000-000000000000"}});
    assert_eq!(
        a.call("PUT", &ra("2b3b6a3e-1d7e-4c5a-9a43-5f0c3e9d2a11"), Some(stranger))
            .await
            .code(),
        "PrincipalNotFound"
    );
    assert_eq!(a.fake.role_assignments().len(), 1);
    let d = a.call("DELETE", &ra(g1), None).await;
    assert_eq!(d.status, 200);
    assert!(a.fake.role_assignments().is_empty());
}

#[tokio::test]
async fn skus_are_listed_in_the_examples_shape_with_restrictions() {
    let ex = Examples::load().unwrap();
    let a = arm(Faults::default()).await;
    let url = format!("{SUB}/providers/Microsoft.Compute/skus?api-version=2021-07-01");
    let r = a.call("GET", &url, None).await;
    let example = ex.file("ListAvailableResourceSkus.2021-07-01.json").unwrap();
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.body["value"][0]["name"],
        example["responses"]["200"]["body"]["value"][0]["name"]
    );
    let mine = sku(
        "Standard_D2ps_v5",
        "standardDPSv5Family",
        "eastus",
        &["1", "2", "3"],
        2,
        8.0,
        "Arm64",
    );
    let want = key_paths(&example["responses"]["200"]["body"]["value"][1]);
    let have = key_paths(&mine);
    assert!(
        want.is_subset(&have),
        "{:?}",
        want.difference(&have).collect::<Vec<_>>()
    );
    a.fake.set_faults(Faults {
        skus: Some(vec![
            mine,
            sku(
                "Standard_D2s_v5",
                "standardDSv5Family",
                "eastus",
                &["1", "2", "3"],
                2,
                8.0,
                "x64",
            ),
            sku("Standard_D2s_v5", "standardDSv5Family", "westus", &[], 2, 8.0, "x64"),
        ]),
        sku_not_available: vec![("eastus".into(), "Standard_D2ps_v5".into())],
        ..Faults::default()
    });
    let r = a
        .call(
            "GET",
            &format!(
                "{SUB}/providers/Microsoft.Compute/skus?%24filter=location%20eq%20%27eastus%27&api-version=2021-07-01"
            ),
            None,
        )
        .await;
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["restrictions"][0]["reasonCode"], "NotAvailableForSubscription");
    assert_eq!(v[1]["restrictions"], json!([]));
    assert!(v[0]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "CpuArchitectureType", "value": "Arm64"})));
}

/// A thousand VMs, sixteen at a time: every one created once with its NIC, IP and disk,
/// listed whole through pages, gone with its group; the fake's own time stays small next
/// to the bucket's floor (80 s for 1,000 writes), so a benchmark measures herd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_vms_in_little_time_of_the_fakes_own() {
    let wide = Limits {
        writes: Bucket {
            burst: 100_000,
            per_second: 1.0,
        },
        reads: Bucket {
            burst: 100_000,
            per_second: 1.0,
        },
        deletes: None,
    };
    let a = std::sync::Arc::new(
        arm(Faults {
            limits: wide,
            polls_in_progress: 0,
            ..Faults::default()
        })
        .await,
    );
    a.network("rg").await;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..1000).step_by(16) {
                let name = format!("vm{i}");
                let r = a
                    .call("PUT", &vm_path("rg", &name), Some(vm_body("rg", &name, "Delete")))
                    .await;
                assert_eq!(r.status, 201, "{:?}", r.body);
                a.wait(&r).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let launch = t.elapsed();
    let mut url = format!("{SUB}/providers/Microsoft.Compute/virtualMachines?{API}");
    let mut seen = 0;
    loop {
        let r = a.call("GET", &url, None).await;
        seen += r.body["value"].as_array().unwrap().len();
        match r.body["nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 1000);
    assert_eq!(
        (a.fake.nics().len(), a.fake.public_ips().len(), a.fake.disks().len()),
        (1000, 1000, 1000)
    );
    let c = a.fake.calls();
    assert_eq!(c.by["PUT virtualMachines"], 1000);
    assert_eq!(c.throttled, 0);
    a.fake.set_faults(Faults {
        limits: wide,
        rg_delete_time: Duration::ZERO,
        ..Faults::default()
    });
    a.call("DELETE", &rg("rg"), None).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(a.fake.vms().is_empty() && a.fake.disks().is_empty() && a.fake.nics().is_empty());
    eprintln!(
        "fake ARM: 1,000 VM PUTs and their polls in {launch:?}, all with lists in {:?}",
        t.elapsed()
    );
    assert!(
        launch < Duration::from_secs(40),
        "{launch:?}: the fake is too slow to measure herd against an 80 s floor"
    );
}

#[tokio::test]
async fn spot_evictions_and_overconstrained_zones() {
    let a = arm(Faults {
        polls_in_progress: 0,
        overconstrained: vec![("eastus".into(), "3".into())],
        ..Faults::default()
    })
    .await;
    a.network("rg").await;
    let mut z3 = vm_body("rg", "vm0", "Delete");
    z3["zones"] = json!(["3"]);
    let r = a.call("PUT", &vm_path("rg", "vm0"), Some(z3)).await;
    assert_eq!(a.wait(&r).await.1["error"]["code"], "OverconstrainedAllocationRequest");
    let r = a
        .call("PUT", &vm_path("rg", "vm1"), Some(vm_body("rg", "vm1", "Delete")))
        .await;
    a.wait(&r).await;
    let mut plain = vm_body("rg", "vm2", "Delete");
    for k in ["priority", "evictionPolicy", "billingProfile"] {
        plain["properties"].as_object_mut().unwrap().remove(k);
    }
    let r = a.call("PUT", &vm_path("rg", "vm2"), Some(plain)).await;
    a.wait(&r).await;
    let r = a
        .call("POST", &format!("{}/simulateEviction", vm_path("rg", "vm2")), None)
        .await;
    assert_eq!((r.status, r.code()), (409, "OperationNotAllowed"));
    let r = a
        .call("POST", &format!("{}/simulateEviction", vm_path("rg", "vm1")), None)
        .await;
    assert_eq!(r.status, 204);
    // evictionPolicy Delete: the VM goes with what its delete options take.
    assert!(a.fake.get(Kind::Vm, "rg", "vm1").is_none());
    assert!(a.fake.get(Kind::Disk, "rg", "vm1-os").is_none() && a.fake.get(Kind::Nic, "rg", "vm1-nic").is_none());
    let puts: Vec<String> = a
        .fake
        .requests_to("PUT", Kind::Vm)
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(puts[1].ends_with("/virtualMachines/vm1"), "{puts:?}");
}

/// Behind the test kit's fault proxy (ARM JSON), the URLs the fake hands out name the
/// proxy, so polls and pages go through it too.
#[tokio::test]
async fn behind_the_fault_proxy_polls_and_pages_go_through_it() {
    use herd_testkit::{ArmJson, FaultProxy};
    let a = arm(Faults {
        polls_in_progress: 1,
        page_size: 1,
        ..Faults::default()
    })
    .await;
    let proxy = FaultProxy::start_with(
        std::sync::Arc::new(ArmJson::default()),
        Some(a.fake.uri()),
        herd_testkit::pass(),
    )
    .await;
    a.fake.advertise(&proxy.endpoint());
    let base = proxy.endpoint();
    let at = |p: &str| format!("{base}{p}?{API}");
    assert_eq!(
        a.call("PUT", &at(&rg("rg")), Some(json!({"location": "eastus"})))
            .await
            .status,
        201
    );
    let r = a
        .call(
            "PUT",
            &at(&res("rg", "Microsoft.Network/publicIPAddresses", "ip1")),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let op = r.header("azure-asyncoperation").unwrap().to_string();
    assert!(op.starts_with(&base), "{op}");
    let (_, end) = a.wait(&r).await;
    assert_eq!(end["status"], "Succeeded");
    a.call(
        "PUT",
        &at(&res("rg", "Microsoft.Network/publicIPAddresses", "ip2")),
        Some(json!({"location": "eastus"})),
    )
    .await;
    let l = a
        .call(
            "GET",
            &at(&format!("{SUB}/providers/Microsoft.Network/publicIPAddresses")),
            None,
        )
        .await;
    let next = l.body["nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with(&base), "{next}");
    assert_eq!(a.call("GET", &next, None).await.body["value"][0]["name"], "ip2");
    let polls = proxy.seen().iter().filter(|s| s.path.contains("/operations/")).count();
    assert!(polls >= 2, "{polls} polls through the proxy");
    assert!(
        a.fake
            .requests()
            .iter()
            .all(|q| q.headers.get("host").is_some_and(|h| !base.ends_with(h.as_str()))),
        "the proxy forwards"
    );
}
